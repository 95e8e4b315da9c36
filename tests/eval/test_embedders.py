"""Keras, SavedModel and TFLite embedders agree on a tiny conv net; quantised and raw-pixel I/O."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.eval.embedders import (
    KerasEmbedder,
    SavedModelEmbedder,
    TFLiteEmbedder,
    load_embedder,
    normalization_from_metadata,
)
from tests.factory import convert_to_tflite, tiny_embedder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny model and its three on-disk forms (built once for the module)."""
    import tensorflow as tf

    tmp = tmp_path_factory.mktemp("tiny_models")
    model = tiny_embedder(seed=3)
    keras_path = tmp / "tiny.keras"
    model.save(keras_path)
    saved_dir = tmp / "tiny_saved"
    model.export(str(saved_dir), format="tf_saved_model", verbose=False)
    dynamic = tmp / "tiny_dynamic.tflite"
    dynamic.write_bytes(convert_to_tflite(model))
    static = tmp / "tiny_b1.tflite"
    static.write_bytes(convert_to_tflite(model, batch_one=True))
    rng = np.random.default_rng(11)
    calib = [rng.integers(0, 256, (1, 112, 112, 3)).astype(np.float32) for _ in range(8)]
    int8 = tmp / "tiny_int8.tflite"
    int8.write_bytes(convert_to_tflite(model, quantize=tf.int8, calibration=calib))
    uint8 = tmp / "tiny_uint8.tflite"
    uint8.write_bytes(convert_to_tflite(model, quantize=tf.uint8, calibration=calib))
    return {"model": model, "keras": keras_path, "saved": saved_dir, "dynamic": dynamic, "static": static,
            "int8": int8, "uint8": uint8}


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)


def _reference(model, pixels):
    return np.asarray(model(preprocess.normalize(pixels), training=False))


def _min_cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def test_factory_picks_backend(tiny):
    assert isinstance(load_embedder(tiny["model"]), KerasEmbedder)
    assert isinstance(load_embedder(tiny["keras"]), KerasEmbedder)
    assert isinstance(load_embedder(tiny["saved"]), SavedModelEmbedder)
    assert isinstance(load_embedder(tiny["dynamic"]), TFLiteEmbedder)


def test_float_backends_agree(tiny, pixels):
    reference = _reference(tiny["model"], pixels)
    assert np.abs(reference).max() > 0.1  # not a degenerate all-zero output
    # Batch size 2 over 5 images exercises a short last batch (and the TFLite resize path).
    for key, atol in [("model", 0), ("keras", 0), ("saved", 1e-5), ("dynamic", 1e-4), ("static", 1e-4)]:
        embedder = load_embedder(tiny[key], batch_size=2)
        out = embedder.embed(pixels)
        assert out.dtype == np.float32 and out.shape == reference.shape, key
        # TFLite folds BatchNorm into the conv and reorders sums: ~1e-6 relative differences.
        np.testing.assert_allclose(out, reference, rtol=1e-4, atol=atol, err_msg=key)
    assert load_embedder(tiny["static"]).embedding_size == 8
    # The two TFLite files really take the two paths (image-by-image vs resized batch).
    assert load_embedder(tiny["static"]).runner.dynamic is False
    assert load_embedder(tiny["dynamic"]).runner.dynamic is True


@pytest.mark.parametrize("key", ["int8", "uint8"])
def test_quantised_tflite(tiny, pixels, key):
    embedder = load_embedder(tiny[key], batch_size=4)
    assert embedder.runner.input_dtype == np.dtype(key) and np.dtype(embedder.runner.output["dtype"]) == np.dtype(key)
    out = embedder.embed(pixels)
    reference = _reference(tiny["model"], pixels)
    # Full-integer quantisation of a 3-layer net: direction kept to within a few degrees.
    assert _min_cosine(out, reference) > 0.97
    # Dequantisation applied: same scale as the float model (raw int codes would be ~100x off).
    ratio = np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)
    np.testing.assert_allclose(ratio, 1.0, atol=0.15)


def test_raw_pixel_models(tiny, pixels, tmp_path):
    """A model that normalises inside the graph: raw pixels in, via option or metadata side-car."""
    import keras

    inner = tiny["model"]
    inp = keras.Input((112, 112, 3))
    raw_model = keras.Model(inp, inner(keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inp)))
    reference = _reference(inner, pixels)
    out = KerasEmbedder(raw_model, normalization=None).embed(pixels)
    np.testing.assert_allclose(out, reference, rtol=1e-5, atol=1e-5)
    # Normalising again would be wrong: proves the option changes what is fed.
    wrong = KerasEmbedder(raw_model).embed(pixels)
    assert np.abs(wrong - reference).max() > 1e-2

    path = tmp_path / "raw.tflite"
    path.write_bytes(convert_to_tflite(raw_model))
    assert TFLiteEmbedder(path).normalization == (127.5, 127.5)  # no metadata: project default
    path.with_suffix(".json").write_text(json.dumps({"normalization": {"mean": [0, 0, 0], "std": [1, 1, 1]}}))
    embedder = TFLiteEmbedder(path)
    assert embedder.normalization is None
    np.testing.assert_allclose(embedder.embed(pixels), reference, rtol=1e-4, atol=1e-4)
    # A deployment bundle's metadata.json, when it names this model file.
    path.with_suffix(".json").unlink()
    bundle = {"model": {"file": "other.tflite"}, "input": {"normalization": {"mean": 0.0, "std": 1.0}}}
    (tmp_path / "metadata.json").write_text(json.dumps(bundle))
    assert TFLiteEmbedder(path).normalization == (127.5, 127.5)  # names another model: ignored
    bundle["model"]["file"] = "raw.tflite"
    (tmp_path / "metadata.json").write_text(json.dumps(bundle))
    assert TFLiteEmbedder(path).normalization is None


def test_normalization_from_metadata():
    assert normalization_from_metadata({}) == (127.5, 127.5)
    nested = {"m": {"input": {"normalization": {"mean": 127.5, "std": 128}}}}
    assert normalization_from_metadata(nested) == (127.5, 128.0)
    assert normalization_from_metadata({"m": {"input_range": [0, 255]}}) is None
    with pytest.raises(ValueError, match="per-channel"):
        normalization_from_metadata({"m": {"normalization": {"mean": [1, 2, 3], "std": 1}}})


def test_bad_inputs(tiny, tmp_path, pixels):
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        load_embedder(tmp_path / "missing.tflite")
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="broken.tflite"):
        load_embedder(bad)
    bad_keras = tmp_path / "broken.keras"
    bad_keras.write_bytes(b"PK\x03\x04 nope")
    with pytest.raises(ValueError, match="broken.keras"):
        load_embedder(bad_keras)
    with pytest.raises(ValueError, match="not a SavedModel"):
        load_embedder(tmp_path)
    with pytest.raises(ValueError, match="unsupported model file"):
        load_embedder(shutil.copy(tiny["keras"], tmp_path / "m.h5"))
    embedder = load_embedder(tiny["model"])
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 112, 112, 3\)"):
        embedder.embed(pixels[:, :64])
