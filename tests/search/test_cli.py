"""``python -m pocketnet_tf.search`` end to end: a short search_quick-like run, SIGKILL, --resume,
the genotype it writes feeding the derived network; one-line errors."""

import json
import signal

import numpy as np
import pytest

from tests.cli_support import kill_at_checkpoint, run_module

# configs/search_quick.flags, shrunk: 6 identities x 12 images (halves of 36 -> 9 steps of 4),
# 16x16 input, C=2, two nodes per cell, 2 epochs.
SMALL_QUICK = [
    "--flagfile=configs/search_quick.flags", "--synth_identities=6", "--synth_images_per_identity=12",
    "--input_size=16", "--random_crop_from=18", "--channels=2", "--num_nodes=2", "--embedding_size=8",
    "--head_width=8", "--gdc_groups=2", "--batch_size=4", "--epochs=2", "--alpha_lr=0.01", "--verbose=0",
]
STEPS = 9


def run_cli(args, timeout=900):
    return run_module("pocketnet_tf.search", args, timeout=timeout)


@pytest.mark.slow
def test_quick_search_sigkill_resume_and_genotype_chain(tmp_path):
    workdir = tmp_path / "run"
    args = [*SMALL_QUICK, f"--workdir={workdir}"]
    state, returncode = kill_at_checkpoint("pocketnet_tf.search", args, workdir / "checkpoints" / "state.json",
                                           lambda st: st["global_step"] == STEPS, 900)
    assert state is not None, "the run ended before its first epoch checkpoint was seen"
    assert returncode == -signal.SIGKILL
    first = json.loads((workdir / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in first] == [1]
    assert not (workdir / "genotype.json").exists()

    again = run_cli(args)  # no --resume: refuses to start over the checkpoints
    assert again.returncode == 2 and "pass --resume" in again.stderr, again.stderr[-2000:]

    resumed = run_cli([*args, "--resume", "--inter_op_threads=2"])
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    summary = json.loads(resumed.stdout)
    log = (workdir / "search.log").read_text()
    # The thread pools are set before TensorFlow starts (too late, they would stay at 0 = default).
    assert "TensorFlow threads: 0 inter-op, 1 intra-op" in log  # the first run: the defaults
    assert "TensorFlow threads: 2 inter-op, 1 intra-op" in log and "already running" not in log
    assert log.count("Grappler meta-optimizer passes per compiled function: 1") == 2  # both runs, the default
    # The command restarted itself with jemalloc preloaded (tools/setup.sh installs it), both runs.
    assert log.count("memory allocator: jemalloc (--allocator=auto)") == 2
    assert f"at global step {STEPS} (epoch 2, step 0)" in log
    assert "epoch 1 genotype = Genotype(" in log and "epoch 2 genotype = Genotype(" in log
    assert "softmax(alpha_normal)" in log

    history = json.loads((workdir / "history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]
    assert history[0] == first[0]  # epoch 1 kept from before the kill
    # Cosine annealing over T_max = 2 epochs: 0.1, then halfway to 0.004 (eta_min is reached after the last epoch).
    assert [e["weight_lr"] for e in history] == pytest.approx([0.1, 0.052])
    assert all(np.isfinite(e["loss"]) and 0 <= e["val_accuracy"] <= 1 for e in history)
    # alpha keeps moving after the resume (a resumed run that skipped the architect step would
    # leave it exactly unchanged); the size of the move depends on the data order (9.0e-4 with
    # the native pipeline's per-batch flip stream, 1e-3+ before), so the bound is 1e-4.
    moved = np.abs(np.array(history[1]["alpha_normal"][0]) - np.array(history[0]["alpha_normal"][0])).max()
    assert moved > 1e-4

    from pocketnet_tf import genotypes, models

    results = json.loads((workdir / "results.json").read_text())
    genotype = genotypes.load(workdir / "genotype.json")
    assert genotype == genotypes.Genotype.from_dict(history[-1]["genotype"])  # --select_genotype=final
    assert genotypes.load(workdir / "genotype.txt") == genotype
    assert results["selected_epoch"] == 2 and set(results["genotype_per_epoch"]) == {"1", "2"}
    assert summary["genotype_json"] == str(workdir / "genotype.json")
    assert len(genotype.normal) == 2 and genotype.normal_concat == (2, 3)
    for name in ("normal.png", "reduce.png", "alpha_normal.png", "alpha_reduce.png"):
        assert (workdir / name).stat().st_size > 1000
        assert results["pictures"][name[:-4] if name.startswith("alpha") else name[:-4] + "_cell"] == str(workdir / name)
    assert results["seconds"] > 0

    # The chain: the searched genotype builds the derived network the trainer trains.
    net = models.build("PocketNetS-128", genotype=str(workdir / "genotype.json"), channels=2, num_cells=3,
                       input_size=16)
    assert net.genotype == genotype
    out = net(np.zeros((1, 16, 16, 3), np.float32))
    assert tuple(out.shape) == (1, 128)


@pytest.mark.slow
def test_cli_reports_bad_input_in_one_line(tmp_path):
    missing = tmp_path / "no_such_dataset"
    result = run_cli([f"--workdir={tmp_path / 'run'}", f"--data={missing}"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: search config: dataset {missing} not found"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli([f"--workdir={tmp_path / 'run2'}", f"--data={empty}", "--input_size=16", "--num_cells=3",
                      "--random_crop_from=0"])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {empty}: not a dataset")
