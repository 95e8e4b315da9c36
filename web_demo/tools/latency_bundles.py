"""Bundles of PocketNetS-128 (112x112, random weights with BN statistics set on synthetic faces)
in fp32, fp16 and int8, written by ``python -m pocketnet_tf.convert``, for ``npm run latency``.

    python web_demo/tools/latency_bundles.py OUT_DIR

Writes OUT_DIR/fp32, OUT_DIR/fp16, OUT_DIR/int8 (skipping those that exist). The int8 bundle is
converted with its agreement thresholds turned off (random weights); its graph and kernels are
those of a trained model's int8 conversion (PReLU fold, fully delegated), which is what the timing
depends on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MODES = ("fp32", "fp16", "int8")


def keras_model(root: Path) -> Path:
    path = root / "pocketnet_s128.keras"
    if path.exists():
        return path
    import keras

    from benchmarks.tflite_latency import _calibrate_bn
    from pocketnet_tf import models
    from pocketnet_tf.data.preprocess import normalize
    from pocketnet_tf.export.images import load_images

    keras.utils.set_random_seed(0)
    model = models.build("PocketNetS-128")
    _calibrate_bn(model, normalize(load_images(str(data(root)), 32, seed=0)))
    model.save(path)
    return path


def data(root: Path) -> Path:
    out = root / "faces"
    if not (out / "train.rec").exists():
        from pocketnet_tf.data.synthetic import SynthConfig, generate

        generate(SynthConfig(out=str(out), identities=20, images_per_identity=9, val_pairs=0))
    return out


def main(out: str) -> None:
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    model = keras_model(root)
    for mode in MODES:
        if (root / mode / "metadata.json").exists():
            continue
        cmd = [sys.executable, "-m", "pocketnet_tf.convert", f"--model={model}", f"--mode={mode}", f"--out={root / mode}",
               f"--representative={data(root)}", "--num_calibration=100", "--num_validation=40", "--golden_count=1"]
        if mode == "int8":
            # Random deep nets amplify int8 rounding (cosine ~0.4 to Keras, tflite/README.md), so the
            # agreement thresholds are off here: these bundles measure speed, not accuracy.
            cmd += ["--min_cosine=-1", "--mean_cosine=-1", "--p01_cosine=-1", "--max_abs_error=1e9"]
        done = subprocess.run(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"convert {mode} failed:\n{done.stderr[-3000:]}")
        print(done.stdout.strip().splitlines()[-2] if done.stdout.strip() else mode, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
