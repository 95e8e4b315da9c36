"""TFLite latency, size, delegation and agreement with Keras, per conversion mode.

    python benchmarks/tflite_latency.py --models=PocketNetS-128,MobileFaceNet [--keras=run/model.keras]
        [--data=DIR_OR_BIN] [--out=bench.json] [--runs=100]

For each model: the Keras model (random weights with BN statistics set on face images, unless
``--keras`` gives a trained one), and its TFLite conversions (fp32, fp16, dynamic, int8 and
int16x8 as ``python -m pocketnet_tf.convert`` makes them, plus int8 *without* the PReLU rewrite
as the baseline it replaces). Reported per variant: file size, whether LiteRT's CompiledModel
runs the whole graph on XNNPACK, LiteRT latency with 1 and 2 threads (min and median of
``--runs`` invocations, all variants of a model timed round-robin so that load from other
processes hits them alike; warm-up 3 invocations), the Keras latency (batch 1, ``tf.function``), and the cosine between
Keras and TFLite embeddings on held-out face images.

Images: ``--data`` (RecordIO dir or .bin), else synthetic faces generated into a temp directory.
This is a benchmark, not a test: numbers depend on the machine and its load (printed), and the
int8/fp32 ratio on the CPU's instruction set: the CPU's model and its AVX2 / AVX-512 / VNNI /
AVX512-BF16 / AMX / dot-product features are printed beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

VARIANTS = [
    # (label, mode, prelu rewrite)
    ("fp32", "fp32", "none"),
    ("fp16", "fp16", "none"),
    ("dynamic", "dynamic", "none"),
    ("int8 (no rewrite)", "int8", "none"),
    ("int8 (decompose)", "int8", "decompose"),
    ("int8", "int8", "fold"),
    ("int16x8", "int16x8", "fold"),
]


def _calibrate_bn(model, images):
    """Sets every BatchNormalization's moving statistics from one training-mode pass, so a
    random-weight model has the activation scale of a trained one."""
    import keras

    bns = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in bns]
    for layer in bns:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(bns, saved):
        layer.momentum = momentum


def _keras_latency(model, x, runs):
    import tensorflow as tf

    fn = tf.function(lambda t: model(t, training=False))
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn(x).numpy()
        times.append(time.perf_counter() - start)
    t = np.asarray(times) * 1e3
    return {"min_ms": round(float(t.min()), 3), "median_ms": round(float(np.median(t)), 3)}


def bench_model(name, keras_path, images, work: Path, runs: int) -> dict:
    import keras

    from pocketnet_tf import models
    from pocketnet_tf.data.preprocess import normalize
    from pocketnet_tf.export import quantize, rewrite, validate
    from pocketnet_tf.export.exporter import load_keras_model
    from pocketnet_tf.export.runtime import TFLiteRunner, is_fully_delegated

    if keras_path:
        model, _ = load_keras_model(keras_path)
        weights = f"trained ({keras_path})"
    else:
        keras.utils.set_random_seed(0)
        model = models.build(name)
        _calibrate_bn(model, normalize(images[:32]))
        weights = "random (BN statistics set on 32 face images)"
    calibration = normalize(images[32:132])
    held_out = images[132:]
    reference = rewrite.reference_outputs(model, held_out)
    rows, paths = [], []
    for label, mode, prelu in VARIANTS:
        export, info = rewrite.build_export_model(model, prelu=prelu)
        data, backend = quantize.to_tflite(export, mode, calibration=calibration)
        path = work / f"{name}_{label.replace(' ', '_').replace('(', '').replace(')', '')}.tflite"
        path.write_bytes(data)
        agreement = validate.embedding_agreement(reference, TFLiteRunner(path).run(normalize(held_out)))
        ops = quantize.op_histogram(data)
        rows.append({
            "variant": label, "mode": mode, "backend": backend, "prelu_rewrite": prelu,
            "size_bytes": len(data), "fully_delegated": is_fully_delegated(path),
            "cosine_min": round(agreement["cosine_min"], 5), "cosine_mean": round(agreement["cosine_mean"], 5),
            "ops": sum(ops.values()), "prelu_ops": ops.get("PRELU", 0),
        })
        paths.append(path)
        print(f"  converted {name} {label}: {len(data)} bytes, cosine min {agreement['cosine_min']:.4f}", flush=True)
    from pocketnet_tf.export.speed import round_robin_latency

    for threads in (1, 2):
        for row, timing in zip(rows, round_robin_latency(paths, num_threads=threads, runs=runs)):
            row[f"latency_{threads}t"] = timing
    x = normalize(images[:1])
    return {"model": name, "weights": weights, "params": int(model.count_params()),
            "keras_latency": _keras_latency(model, x, max(10, runs // 4)), "variants": rows}


def markdown(results) -> str:
    lines = []
    for res in results:
        fp32 = next(r for r in res["variants"] if r["variant"] == "fp32")
        lines += [f"### {res['model']} ({res['weights']})", "",
                  f"Keras (TF, batch 1): min {res['keras_latency']['min_ms']} ms, "
                  f"median {res['keras_latency']['median_ms']} ms", "",
                  "| variant | size (KiB) | fully delegated | cosine min / mean | 1 thread min / median (ms) "
                  "| vs fp32 (min) | 2 threads min / median (ms) | ops (PRELU) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in res["variants"]:
            one, two = r["latency_1t"], r["latency_2t"]
            ratio = one["min_ms"] / fp32["latency_1t"]["min_ms"]
            lines.append(
                f"| {r['variant']} | {r['size_bytes'] / 1024:.0f} | {r['fully_delegated']} | "
                f"{r['cosine_min']:.4f} / {r['cosine_mean']:.4f} | {one['min_ms']:.2f} / {one['median_ms']:.2f} | "
                f"{ratio:.2f}x | {two['min_ms']:.2f} / {two['median_ms']:.2f} | {r['ops']} ({r['prelu_ops']}) |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="PocketNetS-128,MobileFaceNet")
    parser.add_argument("--keras", default=None, help="trained .keras file (used for the first --models entry)")
    parser.add_argument("--data", default=None, help="RecordIO dir or .bin with >= 180 face images")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", default=None, help="write the results as JSON here (and .md beside it)")
    args = parser.parse_args(argv)

    from pocketnet_tf.export.images import load_images

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = args.data
        if data is None:
            from pocketnet_tf.data.synthetic import SynthConfig, generate

            data = str(tmp / "faces")
            generate(SynthConfig(out=data, identities=20, images_per_identity=9, val_pairs=0))
        images = load_images(data, 180, seed=0)
        from pocketnet_tf.export.speed import cpu_features, format_cpu

        cpu = cpu_features()
        print(f"CPU: {format_cpu(cpu)}", flush=True)
        print(f"load average before: {os.getloadavg()}", flush=True)
        results = []
        for i, name in enumerate(args.models.split(",")):
            results.append(bench_model(name, args.keras if i == 0 else None, images, tmp, args.runs))
        print(f"load average after: {os.getloadavg()}", flush=True)
    text = f"CPU: {format_cpu(cpu)}\n\n" + markdown(results)
    print(text)
    if args.out:
        from pocketnet_tf.io_utils import write_json_atomic, write_text_atomic

        write_json_atomic(args.out, {"load_average": os.getloadavg(), "cpu": cpu, "results": results})
        write_text_atomic(Path(args.out).with_suffix(".md"), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
