"""The evaluation runner in process, and ``python -m pocketnet_tf.evaluate`` end to end (slow)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.eval.embedders import load_embedder
from pocketnet_tf.eval.ijb import evaluate_ijb
from pocketnet_tf.eval.megaface import feature_path, read_feature_file
from pocketnet_tf.eval.runner import EvalConfig, run_evaluation
from pocketnet_tf.eval.verification import evaluate_bin
from tests.eval.synthetic_sets import write_mini_ijb_release, write_toy_bin
from tests.factory import convert_to_tflite, pixels, tiny_embedder

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_config_checks(tmp_path):
    bin_path = write_toy_bin(tmp_path / "lfw.bin")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        EvalConfig(model="m.keras", out=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        EvalConfig(model="m.keras", out=str(tmp_path), bin=(str(tmp_path / "missing.bin"),))
    with pytest.raises(ValueError, match="share a set name"):
        (tmp_path / "x").mkdir()
        write_toy_bin(tmp_path / "x" / "lfw.bin")
        EvalConfig(model="m.keras", out=str(tmp_path), bin=(str(bin_path), str(tmp_path / "x" / "lfw.bin")))
    with pytest.raises(ValueError, match="unknown IJB set"):
        EvalConfig(model="m.keras", out=str(tmp_path), ijb=str(tmp_path), ijb_set="IJBX")
    with pytest.raises(ValueError, match="MegaFace export needs all"):
        EvalConfig(model="m.keras", out=str(tmp_path), megaface_facescrub_images=str(tmp_path))


def test_runner_on_tflite_with_megaface(tmp_path):
    model = tiny_embedder(seed=2)
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(convert_to_tflite(model))
    bin_path = write_toy_bin(tmp_path / "cfp_fp.bin", pairs=20)
    for sub, rels in (("fs", ["A/A_1.png", "A/A_2.png", "B/B_1.png"]), ("mf", ["0/1.jpg", "0/2.jpg"])):
        for rel, img in zip(rels, pixels(len(rels), seed=len(sub), size=112)):
            (tmp_path / sub / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / sub / rel).write_bytes(preprocess.encode_png(img))
        (tmp_path / f"{sub}.txt").write_text("\n".join(rels) + "\n")
    (tmp_path / "fs_noise.txt").write_text("A_2.png\n")
    (tmp_path / "mf_noise.txt").write_text("0/2.jpg\n")
    config = EvalConfig(
        model=str(tflite), out=str(tmp_path / "out"), bin=(str(bin_path),), n_folds=5, progress=False,
        megaface_algo="tiny", megaface_facescrub_images=str(tmp_path / "fs"),
        megaface_facescrub_list=str(tmp_path / "fs.txt"), megaface_distractor_images=str(tmp_path / "mf"),
        megaface_distractor_list=str(tmp_path / "mf.txt"), megaface_facescrub_noises=str(tmp_path / "fs_noise.txt"),
        megaface_distractor_noises=str(tmp_path / "mf_noise.txt"))
    results = run_evaluation(config)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert on_disk["backend"] == "tflite" and on_disk["embedding_size"] == 8
    direct = evaluate_bin(load_embedder(tflite), bin_path, n_folds=5)
    assert on_disk["sets"]["cfp_fp"]["accuracy"] == direct.accuracy
    assert (tmp_path / "out" / "roc_cfp_fp.png").read_bytes()[:8] == PNG_MAGIC
    mf = on_disk["megaface"]
    assert (mf["facescrub_embedded"], mf["megaface_embedded"]) == (3, 2)
    assert mf["refinement"]["facescrub_noisy"] == 1 and mf["refinement"]["megaface_noisy"] == 1
    refined = read_feature_file(feature_path(tmp_path / "out" / "megaface" / "megaface_refined", "0/2.jpg", "tiny"))
    assert refined.size == 9 and refined[-1] == 100.0


def _run_cli(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pocketnet_tf.evaluate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
def test_cli_end_to_end(tmp_path):
    from tests.factory import mean_colour_model

    model = mean_colour_model(grid=4)
    model.save(tmp_path / "m.keras")
    lfw = write_toy_bin(tmp_path / "lfw.bin", pairs=20)
    agedb = write_toy_bin(tmp_path / "agedb_30.bin", pairs=30, seed=1)
    write_mini_ijb_release(tmp_path / "IJBC")
    out = tmp_path / "out"
    proc = _run_cli("--model", str(tmp_path / "m.keras"), f"--bin={lfw},{agedb}", f"--ijb={tmp_path / 'IJBC'}",
                    "--ijb-set=IJBC", f"--out={out}", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["sets"]) == ["IJBC", "agedb_30", "lfw"]
    embedder = load_embedder(tmp_path / "m.keras")
    for name, path in (("lfw", lfw), ("agedb_30", agedb)):
        expected = evaluate_bin(embedder, path).to_json()
        got = results["sets"][name]
        for key in ("pairs", "accuracy", "accuracy_std", "best_threshold", "fold_thresholds", "tar_at_far"):
            assert got[key] == expected[key], (name, key)
        assert got["xnorm"] == pytest.approx(expected["xnorm"], rel=1e-6)
        assert (out / got["roc_png"]).read_bytes()[:8] == PNG_MAGIC
    ijb = results["sets"]["IJBC"]
    expected = evaluate_ijb(embedder, tmp_path / "IJBC", "IJBC")
    assert ijb["tar_at_far"] == {f"{k:.0e}": v for k, v in expected.tar_at_far.items()}
    assert (ijb["pairs"], ijb["images"], ijb["templates"]) == (28, 24, 8)
    np.testing.assert_allclose(np.load(out / ijb["scores_npz"])["scores"], expected.scores, rtol=1e-6)
    assert "lfw: accuracy" in proc.stdout

    # A malicious .bin: one-line error naming the file and the refused global; nothing runs.
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.bin"
    evil.write_bytes(pickle.dumps((_Evil(marker), [True]), protocol=2))
    proc = _run_cli(f"--model={tmp_path / 'm.keras'}", f"--bin={evil}", f"--out={tmp_path / 'out2'}", cwd=tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("evaluate: error: ") and str(evil) in last and "system" in last
    assert not marker.exists()
