"""``python -m pocketnet_tf.data`` through real subprocesses, as a user runs it."""

import json
import subprocess
import sys

import pytest

from pocketnet_tf.data import bin_file, pipeline, tfrecord


def _run(*args):
    return subprocess.run([sys.executable, "-m", "pocketnet_tf.data", *args], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_synth_info_convert(tmp_path):
    out = tmp_path / "synth"
    proc = _run("synth", f"--out={out}", "--identities=3", "--images-per-identity=4", "--seed=2", "--size=40",
                "--val-identities=3", "--val-pairs=6")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["num_images"] == 12 and summary["num_classes"] == 3 and summary["size"] == 40
    assert summary["bytes"]["train.rec"] == (out / "train.rec").stat().st_size > 0
    source = pipeline.open_source(out)
    assert source.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    images, issame = bin_file.read_bin(out / "synth_val.bin")
    assert len(images) == 12 and issame.sum() == 3

    info = _run("info", f"--src={out}", "--decode")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout) | {"location": None} == {
        "location": None, "kind": "recordio", "num_classes": 3, "num_images": 12, "image_size": [40, 40],
        "corrupt_records": 0, "corrupt_examples": []}

    converted = _run("convert", f"--src={out}", f"--out={tmp_path / 'synth.tfrecord'}")
    assert converted.returncode == 0, converted.stderr
    assert json.loads(converted.stdout)["num_written"] == 12
    tf_source = tfrecord.TFRecordSource(tmp_path / "synth.tfrecord")
    assert [tf_source.read_image(i) for i in range(12)] == [source.read_image(i) for i in range(12)]


@pytest.mark.slow
def test_helpfull_documents_every_flag_and_errors_are_one_line(tmp_path):
    proc = _run("--helpfull")  # absl prints the help and exits with status 1
    assert "synth    --out=DIR" in proc.stdout and "may be written with dashes" in proc.stdout
    for flag in ("out", "src", "identities", "images_per_identity", "seed", "size", "val_identities", "val_pairs",
                 "decode"):
        assert f"--{flag}" in proc.stdout, flag
    bad = _run("info", f"--src={tmp_path / 'missing'}")
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'missing'}: dataset not found"
    usage = _run("frobnicate")
    assert usage.returncode != 0 and "usage: python -m pocketnet_tf.data" in usage.stderr
