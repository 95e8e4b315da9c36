"""``python -m pocketnet_tf.train --precision=mixed_bfloat16`` -> student.keras -> convert (fp32) -> evaluate.

The student trained in mixed precision must be an ordinary float32 model for the tools that follow.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_support import run_module
from tests.train.test_cli import SMALL_QUICKSTART

REPO = Path(__file__).resolve().parents[2]


def _run(module, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_mixed_bfloat16_student_converts_and_evaluates(tmp_path):
    workdir = tmp_path / "run"
    proc = run_module("pocketnet_tf.train", [*SMALL_QUICKSTART, "--notrain_teacher", "--kd=none",
                                             "--precision=mixed_bfloat16", f"--workdir={workdir}"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    results = json.loads((workdir / "results.json").read_text())
    assert [results["history"][e]["nonfinite_steps"] for e in ("1", "2")] == [0.0, 0.0]
    assert "--precision=mixed_bfloat16" in (workdir / "flags.txt").read_text()
    import keras

    import pocketnet_tf.models  # noqa: F401  (registers the classes)

    student = keras.saving.load_model(workdir / "student.keras")
    assert {layer.dtype_policy.name for layer in student._flatten_layers()} == {"float32"}
    assert student.output.dtype == "float32"

    bin_path = workdir / "data" / "synth_val.bin"
    bundle = tmp_path / "bundle"
    proc = _run("pocketnet_tf.convert", f"--model={workdir / 'student.keras'}", "--mode=fp32", f"--out={bundle}",
                f"--validation_data={workdir / 'data'}", "--num_validation=8", "--golden_count=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fp32 (PASSED)" in proc.stdout
    proc = _run("pocketnet_tf.evaluate", f"--model={bundle / 'model.tflite'}", f"--bin={bin_path}",
                f"--out={tmp_path / 'eval'}", "--no-progress")
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = json.loads((tmp_path / "eval" / "results.json").read_text())["sets"]["synth_val"]["accuracy"]
    # Same weights as the bfloat16 model evaluated at the end of training; the float32 TFLite
    # embeddings differ from bfloat16 ones by ~1 %, which flips at most a pair or two of the 40
    # (0.025 each).
    assert accuracy == pytest.approx(results["after"]["synth_val"]["accuracy"], abs=0.051)
