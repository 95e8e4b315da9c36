"""``python -m pocketnet_tf.train --precision=mixed_bfloat16`` -> student.keras -> convert (fp32) -> evaluate.

The student trained in mixed precision must be an ordinary float32 model for the tools that follow.
Training runs as the command; conversion and evaluation run through the library calls their
commands make (``run_export``, ``run_evaluation``: their flag handling is tested in
tests/export/test_cli.py and tests/eval/test_evaluate_cli.py), in this process, which saves two
TensorFlow start-ups.
"""

import json

import pytest

from tests.cli_support import run_module
from tests.train.test_cli import SMALL_QUICKSTART


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

    from pocketnet_tf.eval.runner import EvalConfig, run_evaluation
    from pocketnet_tf.export.exporter import ExportConfig, run_export

    bin_path = workdir / "data" / "synth_val.bin"
    bundle = tmp_path / "bundle"
    report = run_export(ExportConfig(model=str(workdir / "student.keras"), mode="fp32", out=str(bundle),
                                     validation_data=str(workdir / "data"), num_validation=8, golden_count=1))
    assert report["passed"] and report["reasons"] == [], report["reasons"]
    evaluation = run_evaluation(EvalConfig(model=str(bundle / "model.tflite"), bin=(str(bin_path),),
                                           out=str(tmp_path / "eval"), progress=False, plots=False))
    assert (tmp_path / "eval" / "results.json").is_file()
    accuracy = evaluation["sets"]["synth_val"]["accuracy"]
    # Same weights as the bfloat16 model evaluated at the end of training; the float32 TFLite
    # embeddings differ from bfloat16 ones by ~1 %, which flips at most a pair or two of the 40
    # (0.025 each).
    assert accuracy == pytest.approx(results["after"]["synth_val"]["accuracy"], abs=0.051)
