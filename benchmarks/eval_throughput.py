"""Verification throughput (pairs/s) of a Keras model vs its TFLite conversion on a generated .bin.

Usage: python benchmarks/eval_throughput.py [--pairs 300] [--batch_size 64] [--num_threads 2] [--json]

Builds ``pocketnet_tf.models.build("PocketNetS-128")`` (random weights) if the registry is
importable, else a small conv net (the output says which); converts it to a float32 TFLite model
with a dynamic batch; writes a .bin of random JPEG pairs; then times the full verification path
(read .bin, JPEG decode, embed image + mirror, 10-fold protocol) once per backend after a short
warm-up. Pairs/s = pairs / wall seconds of ``evaluate_bin``. Figures depend on the machine and on
what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def _model():
    try:
        from pocketnet_tf import models

        return models.build("PocketNetS-128"), "PocketNetS-128 (pocketnet_tf.models.build, random weights)"
    except Exception as err:  # registry missing or broken: fall back, and say so
        import keras

        inp = keras.Input((112, 112, 3))
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same")(inp)
        x = keras.layers.PReLU(shared_axes=[1, 2])(x)
        x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
        x = keras.layers.Conv2D(32, 1)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inp, keras.layers.Dense(128)(x)), f"small fallback conv net ({type(err).__name__}: {err})"


def _write_bin(path: Path, pairs: int) -> None:
    from pocketnet_tf.data import preprocess
    from pocketnet_tf.data.bin_file import write_bin

    rng = np.random.default_rng(0)
    images = [preprocess.encode_jpeg(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)) for _ in range(2 * pairs)]
    write_bin(path, images, (np.arange(pairs) % 2 == 0).tolist())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--num_threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import tensorflow as tf

    from pocketnet_tf.eval.embedders import KerasEmbedder, TFLiteEmbedder
    from pocketnet_tf.eval.verification import evaluate_bin

    model, description = _model()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bin_path = tmp / "bench.bin"
        _write_bin(bin_path, args.pairs)
        t0 = time.perf_counter()
        tflite_path = tmp / "model.tflite"
        tflite_path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        convert_s = time.perf_counter() - t0
        embedders = {
            "keras": KerasEmbedder(model, batch_size=args.batch_size),
            "tflite": TFLiteEmbedder(tflite_path, batch_size=args.batch_size, num_threads=args.num_threads),
        }
        warm = np.random.default_rng(1).integers(0, 256, (args.batch_size, 112, 112, 3), dtype=np.uint8)
        rows, embeddings = [], {}
        for name, embedder in embedders.items():
            embeddings[name] = embedder.embed(warm)  # warm-up: tracing / tensor allocation
            t0 = time.perf_counter()
            result = evaluate_bin(embedder, bin_path, batch_size=args.batch_size)
            seconds = time.perf_counter() - t0
            rows.append({"backend": name, "pairs": result.pairs, "seconds": round(seconds, 3),
                         "pairs_per_s": round(result.pairs / seconds, 1),
                         "images_per_s": round(4 * result.pairs / seconds, 1), "accuracy": result.accuracy})
        diff = float(np.max(np.abs(embeddings["keras"] - embeddings["tflite"])))
        scale = float(np.max(np.abs(embeddings["keras"])))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    info = {"model": description, "load_average_1min": None if load is None else round(load, 2),
            "tensorflow": tf.__version__, "cpus": os.cpu_count(),
            "tflite_threads": args.num_threads, "batch_size": args.batch_size,
            "tflite_conversion_s": round(convert_s, 2), "max_abs_embedding_diff": diff,
            "max_abs_embedding": scale, "results": rows}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"model: {description}")
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs (1-min load {info['load_average_1min']}), "
          f"TFLite threads "
          f"{args.num_threads}, batch {args.batch_size}, conversion {convert_s:.1f} s")
    print(f"Keras vs TFLite embeddings: max |diff| / max |value| = {diff / scale:.1e} (random weights: "
          f"raw embeddings are large, max |value| {scale:.3g})")
    print(f"{'backend':<8} {'pairs':>6} {'seconds':>8} {'pairs/s':>8} {'img/s':>8}  (img/s counts mirrors)")
    for r in rows:
        print(f"{r['backend']:<8} {r['pairs']:>6} {r['seconds']:>8} {r['pairs_per_s']:>8} {r['images_per_s']:>8}")


if __name__ == "__main__":
    main()
