"""Writes small verification bundles for the Android tests.

PROVISIONAL: until ``pocketnet_tf.export`` writes bundles, this module writes one in the layout
``org.pocketnet.core.BundleMetadata`` and ``pocketnet_tf.face_pipeline.read_bundle_metadata``
read (``metadata.json`` + ``model.tflite`` + ``golden/*.npy``) from a tiny Keras model converted
with the TFLite converter (float32, or full int8 with a representative dataset).

Golden vectors: ``images.npy`` (uint8 aligned crops), ``inputs.npy`` (the exact tensors fed,
computed by :class:`pocketnet_tf.face_pipeline.BundleEmbedder`), ``embeddings.npy`` (what
``ai_edge_litert`` returned for them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pocketnet_tf.data import preprocess

EMBEDDING_SIZE = 16


def tiny_model(seed: int = 0):
    """112x112x3 -> 16: strided conv, PReLU-free (int8-friendly), global pooling, dense."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((112, 112, 3), batch_size=1)
    # He-normal weights keep activations O(1), so int8 output quantisation is meaningful.
    init = keras.initializers.HeNormal(seed=seed)
    x = keras.layers.Conv2D(8, 5, strides=4, activation="relu", kernel_initializer=init)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(EMBEDDING_SIZE, kernel_initializer=init)(x)
    return keras.Model(inputs, outputs)


def convert(model, quantize: bool, calibration: np.ndarray) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([preprocess.normalize(img)[None]] for img in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _tensor_quant(detail):
    scale, zero = detail["quantization"]
    return None if scale == 0 else {"scale": float(scale), "zero_point": int(zero)}


def write_bundle(out: Path, model_bytes: bytes, golden_images: np.ndarray, *, threshold: float = 0.35) -> Path:
    """Writes ``out/`` (model, metadata, golden vectors) and returns it."""
    from ai_edge_litert.interpreter import Interpreter

    from pocketnet_tf.face_pipeline import BundleEmbedder

    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(model_bytes)
    interp = Interpreter(model_content=model_bytes)
    (inp,), (outp,) = interp.get_input_details(), interp.get_output_details()
    in_dtype, out_dtype = np.dtype(inp["dtype"]).name, np.dtype(outp["dtype"]).name
    meta = {
        "format": "pocketnet_tf.bundle",
        "version": 1,
        "model": {"file": "model.tflite", "sha256": hashlib.sha256(model_bytes).hexdigest()},
        "input": {
            "shape": [int(v) for v in inp["shape"]],
            "layout": "NHWC",
            "color": "RGB",
            "dtype": in_dtype,
            "normalization": {"mean": preprocess.MEAN, "std": preprocess.STD},
            "quantization": _tensor_quant(inp) if in_dtype != "float32" else None,
        },
        "output": {
            "embedding_size": EMBEDDING_SIZE,
            "dtype": out_dtype,
            "quantization": _tensor_quant(outp) if out_dtype != "float32" else None,
            "l2_normalized": False,
        },
        "alignment": {"template": preprocess.ARCFACE_TEMPLATE_112.astype(np.float64).tolist(), "image_size": [112, 112]},
        "verification": {"metric": "cosine", "threshold": threshold, "far": 1e-3},
        "golden": {
            "images": "golden/images.npy",
            "inputs": "golden/inputs.npy",
            "embeddings": "golden/embeddings.npy",
            "tolerance": {"min_cosine": 0.9999, "max_abs_diff": 1e-3} if in_dtype == "float32"
            else {"min_cosine": 0.99, "max_abs_diff": 0.05},
        },
    }
    import json

    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    embedder = BundleEmbedder(out)
    inputs = np.concatenate([embedder.input_tensor(img) for img in golden_images])
    embeddings = np.stack([embedder.run(t[None]) for t in inputs])
    (out / "golden").mkdir(exist_ok=True)
    np.save(out / "golden" / "images.npy", np.asarray(golden_images, dtype=np.uint8))
    np.save(out / "golden" / "inputs.npy", inputs)
    np.save(out / "golden" / "embeddings.npy", embeddings.astype(np.float32))
    return out
