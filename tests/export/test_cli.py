"""``python -m pocketnet_tf.convert`` and ``python -m pocketnet_tf.verify_bundle`` as a user runs them."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from tests import factory


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_convert_int8_raw_input_then_verify_bundle(tmp_path):
    summary = factory.synthetic_faces(tmp_path / "data")
    model = factory.tiny_plain(seed=4)
    model.save(tmp_path / "plain.keras")
    out = tmp_path / "bundle"
    proc = _run("pocketnet_tf.convert", f"--model={tmp_path / 'plain.keras'}", "--mode=int8", f"--out={out}",
                f"--representative={tmp_path / 'data'}", f"--bin={summary['files']['synth_val.bin']}",
                "--num_calibration=16", "--num_validation=10", "--golden_count=2", "--raw_input", "--far=0.1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "int8 (PASSED)" in proc.stdout
    # The int8/fp32 latency ratio measured on this machine, in the CLI output and report.json.
    speed = json.loads((out / "report.json").read_text())["latency_vs_fp32"]
    assert speed["mode"] == "int8" and speed["runs"] == 20
    assert speed["ratio_min"] == round(speed["converted_ms"]["min_ms"] / speed["fp32_ms"]["min_ms"], 3) > 0
    assert f"= {speed['ratio_min']:.2f}x; CPU: " in proc.stdout
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["input"]["normalization"] == {"mean": 0.0, "std": 1.0}
    assert meta["input"]["normalization_in_graph"] == {"mean": preprocess.MEAN, "std": preprocess.STD}
    assert meta["model"]["prelu_rewrite"] == "fold" and meta["quantization"]["activations"] == "int8"
    # The golden input tensors are raw pixels: exactly the PNG's values.
    golden = json.loads((out / "golden" / "golden.json").read_text())
    x = np.frombuffer((out / "golden" / golden["cases"][0]["input"]).read_bytes(), "<f4")
    png = preprocess.decode_image((out / "golden" / golden["cases"][0]["image"]).read_bytes(), size=factory.EXPORT_SIZE)
    np.testing.assert_array_equal(x, png.reshape(-1).astype(np.float32))
    # The evaluation embedder picks up "feed raw pixels" from the bundle.
    from pocketnet_tf.eval.embedders import TFLiteEmbedder

    assert TFLiteEmbedder(out / "model.tflite").normalization is None

    proc = _run("pocketnet_tf.verify_bundle", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "verify_bundle: OK (2 golden vectors" in proc.stdout

    path = out / "golden" / golden["cases"][1]["embedding"]
    values = np.frombuffer(path.read_bytes(), "<f4").copy()
    path.write_bytes((values * -1.0).astype("<f4").tobytes())
    proc = _run("pocketnet_tf.verify_bundle", str(out))
    assert proc.returncode == 2 and golden["cases"][1]["embedding"] in proc.stderr

    # A threshold no conversion can meet: exit 3, the earlier bundle is left as it was.
    proc = _run("pocketnet_tf.convert", f"--model={tmp_path / 'plain.keras'}", "--mode=fp16", f"--out={out}",
                f"--validation_data={tmp_path / 'data'}", "--num_validation=4", "--min_cosine=1.01")
    assert proc.returncode == 3 and "validation failed, no model written" in proc.stderr
    assert (out / "failed_report.md").is_file() and json.loads((out / "metadata.json").read_text()) == meta

    proc = _run("pocketnet_tf.convert", f"--model={tmp_path / 'missing.keras'}", "--mode=fp32", f"--out={out}",
                f"--validation_data={tmp_path / 'data'}")
    assert proc.returncode == 1 and "missing.keras" in proc.stderr
