"""Keras inference time of registered models for one 112x112 image and for a batch of 64.

Usage: python benchmarks/keras_inference.py [--models PocketNetS-128,MobileFaceNet] [--repeats 20] [--json]

Times a compiled ``tf.function`` forward (inference mode) after warm-up; prints the median and the
10th/90th percentile in milliseconds. Figures depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def bench(name: str, batch: int, repeats: int) -> dict:
    import tensorflow as tf

    from pocketnet_tf import models

    model = models.build(name)
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (batch, 112, 112, 3)).astype(np.float32))
    for _ in range(3):
        fn(x).numpy()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x).numpy()
        times.append((time.perf_counter() - t0) * 1e3)
    t = np.asarray(times)
    return {
        "model": name, "batch": batch, "median_ms": round(float(np.median(t)), 2),
        "p10_ms": round(float(np.percentile(t, 10)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2),
        "images_per_s": round(batch / (float(np.median(t)) / 1e3), 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="PocketNetS-128,MobileFaceNet")
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import tensorflow as tf

    rows = [
        bench(name, int(b), args.repeats) for name in args.models.split(",") for b in args.batches.split(",")
    ]
    info = {"tensorflow": tf.__version__, "cpus": os.cpu_count(), "results": rows}
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs")
    print(f"{'model':<16} {'batch':>5} {'median ms':>10} {'p10':>8} {'p90':>8} {'img/s':>8}")
    for r in rows:
        print(f"{r['model']:<16} {r['batch']:>5} {r['median_ms']:>10} {r['p10_ms']:>8} {r['p90_ms']:>8} {r['images_per_s']:>8}")


if __name__ == "__main__":
    main()
