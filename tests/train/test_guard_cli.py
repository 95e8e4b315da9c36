"""Issue #12 through ``python -m pocketnet_tf.train`` as a user runs it: divergence, refused runs,
kill -9 during a checkpoint write and a teacher export, a corrupt newest checkpoint, and output
paths that are a file, read-only or on a full disk. Each asserts what is kept and what is said."""

import json
import shutil
import signal

import pytest

from tests.cli_support import REPO, run_module
from tests.fault_injection import fill, remount_read_only, tmpfs

# 6 identities x 8 images / batch 8 = 6 steps per epoch; a 3-cell C=2 PocketNet at 32x32.
TINY = ["--synth_identities=6", "--synth_images_per_identity=8", "--synth_val_identities=4", "--synth_val_pairs=20",
        "--input_size=32", "--model=PocketNetS-128", "--channels=2", "--num_cells=3", "--embedding_size=16",
        "--batch_size=8", "--lr_milestones=2", "--verbose=0", "--log_every_steps=1"]

# Runs the training command in-process with one function patched to end in a real SIGKILL.
_KILLED_RUN = """
import os, runpy, signal, sys
target, after = sys.argv[1], int(sys.argv[2])
calls = [0]
def killing(original):
    def wrapper(self, path, *args, **kwargs):
        calls[0] += 1
        if calls[0] == after:
            original(self, path, *args, **kwargs)  # the temporary is complete but not yet renamed:
            os.kill(os.getpid(), signal.SIGKILL)  # the widest window of an interrupted write
        return original(self, path, *args, **kwargs)
    return wrapper
if target == "checkpoint":
    import keras
    keras.Model.save_weights = killing(keras.Model.save_weights)
else:
    import tensorflow as tf
    original = tf.saved_model.save
    tf.saved_model.save = lambda obj, path, *a, **k: killing(lambda self, p, *a, **k: original(self, p, *a, **k))(
        obj, path, *a, **k)
sys.argv = ["pocketnet_tf.train", *sys.argv[3:]]
runpy.run_module("pocketnet_tf.train", run_name="__main__")
"""


def train(*args):
    return run_module("pocketnet_tf.train", [*TINY, *args], timeout=600)


def killed_train(target, after, *args):
    import subprocess
    import sys

    from tests.cli_support import ENV

    return subprocess.run([sys.executable, "-c", _KILLED_RUN, target, str(after), *TINY, *args], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=600)


def message(proc) -> str:
    """The command's own one-line message (the last line of stderr)."""
    return proc.stderr.strip().splitlines()[-1]


def strict_json(path):
    def refuse(token):
        raise ValueError(f"{path}: non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """One finished epoch (checkpoints at steps 3 and 6) over shared synthetic data."""
    root = tmp_path_factory.mktemp("good")
    proc = train("--synthesize_data", f"--data={root / 'data'}", f"--workdir={root / 'run'}", "--epochs=1",
                 "--checkpoint_every_steps=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def copy_run(good_run, dst):
    shutil.copytree(good_run / "run", dst)
    return dst, [f"--data={good_run / 'data'}", f"--workdir={dst}"]


def snapshot(run):
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()
            and p.name not in ("train.log",) and "tensorboard" not in p.parts}


@pytest.mark.slow
def test_divergence_keeps_the_last_good_work_and_resume_restarts_from_it(good_run, tmp_path):
    run, args = copy_run(good_run, tmp_path / "run")
    before = snapshot(run)
    proc = train(*args, "--resume", "--epochs=2", "--base_lr=1e30", "--clip_norm=0")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert message(proc).startswith("error: training diverged at global step ")
    assert "stopped before saving anything" in message(proc)
    after = snapshot(run)
    changed = sorted(str(k) for k in set(before) | set(after) if before.get(k) != after.get(k))
    # Only the (new, accepted) attempt's record and results.json changed: checkpoints and student.keras kept.
    assert changed == ["config.json", "flags.txt", "records/attempt-002/config.json", "records/attempt-002/flags.txt",
                       "results.json"]
    results = strict_json(run / "results.json")
    assert results["status"] == "diverged" and "diverged at global step" in results["error"]
    assert results["history"]["1"] == strict_json(good_run / "run" / "results.json")["history"]["1"]

    proc = train(*args, "--resume", "--epochs=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from {run / 'checkpoints' / 'ckpt-0000000006.weights.h5'} at global step 6" in \
        (run / "train.log").read_text()
    results = strict_json(run / "results.json")
    assert results["status"] == "completed" and "error" not in results and sorted(results["history"]) == ["1", "2"]


@pytest.mark.slow
def test_refused_runs_do_not_rewrite_the_run_record(good_run, tmp_path):
    run, args = copy_run(good_run, tmp_path / "run")
    before = snapshot(run)
    proc = train(*args, "--epochs=2", "--base_lr=0.5")  # no --resume
    assert proc.returncode == 2 and "pass --resume to continue it" in message(proc)
    proc = train(*args, "--resume", "--epochs=2", "--channels=4")
    assert proc.returncode == 2 and "no checkpoint could be restored" in message(proc)
    assert snapshot(run) == before  # flags.txt, config.json, records/, checkpoints, student.keras


@pytest.mark.slow
def test_kill_during_checkpoint_write_and_teacher_export_corrupt_newest_then_resume(good_run, tmp_path):
    run, args = copy_run(good_run, tmp_path / "run")
    args += ["--resume", "--epochs=2", "--export_teacher", "--checkpoint_every_steps=4"]
    # 1. SIGKILL while the step-8 checkpoint is written: its temporary stays, state.json still says 6.
    proc = killed_train("checkpoint", 1, *args)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    stale_ckpt = [p.name for p in (run / "checkpoints").iterdir() if ".tmp" in p.name]
    assert len(stale_ckpt) == 1 and stale_ckpt[0].startswith(".ckpt-0000000008.weights.h5.")
    assert strict_json(run / "checkpoints" / "state.json")["global_step"] == 6
    # 2. Resumed, then SIGKILL while epoch 2's teacher SavedModel is written (before its checkpoint).
    proc = killed_train("teacher", 1, *args)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert f"removed stale temporary {run / 'checkpoints' / stale_ckpt[0]}" in (run / "train.log").read_text()
    stale_teacher = [p.name for p in (run / "teachers").iterdir()]
    assert len(stale_teacher) == 1 and stale_teacher[0].startswith(".epoch_002.") and ".tmp" in stale_teacher[0]
    assert strict_json(run / "checkpoints" / "state.json")["global_step"] == 8
    # 3. The newest checkpoint is damaged as well: --resume cleans up, falls back to step 6, finishes.
    newest = run / "checkpoints" / "ckpt-0000000008.weights.h5"
    newest.write_bytes(newest.read_bytes()[:4096])
    proc = train(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run / "train.log").read_text()
    assert f"removed stale temporary {run / 'teachers' / stale_teacher[0]}" in log
    assert f"skipping checkpoint {newest}" in log
    assert "fell back to the newest intact checkpoint" in log and "at global step 6" in log
    assert not [p for p in run.rglob("*") if ".tmp" in p.name]
    assert sorted(p.name for p in (run / "teachers").iterdir()) == ["epoch_002", "manifest.json"]
    assert strict_json(run / "checkpoints" / "state.json")["global_step"] == 12


@pytest.mark.slow
def test_output_paths_file_read_only_and_full_disk(good_run, tmp_path):
    (tmp_path / "afile").write_text("precious")
    proc = train(f"--data={good_run / 'data'}", f"--workdir={tmp_path / 'afile'}", "--epochs=1")
    assert proc.returncode == 2
    assert message(proc) == f"error: cannot write {tmp_path / 'afile'}: exists and is not a directory"
    assert (tmp_path / "afile").read_text() == "precious"

    with tmpfs(tmp_path / "ro", 4096) as mount:
        run, args = copy_run(good_run, mount / "run")
        remount_read_only(mount)
        proc = train(*args, "--resume", "--epochs=2")
        assert proc.returncode == 2
        assert message(proc) == f"error: cannot write {run / 'train.log'}: Read-only file system"

    with tmpfs(tmp_path / "full", 4096) as mount:
        run, args = copy_run(good_run, mount / "run")
        before = snapshot(run)
        fill(mount)
        proc = train(*args, "--resume", "--epochs=2")
        assert proc.returncode == 2, proc.stderr[-3000:]
        assert message(proc).startswith(f"error: cannot write {run}/") and message(proc).endswith(
            ": No space left on device")
        after = snapshot(run)
        assert {k: v for k, v in after.items() if k.parts[0] != "records"} == \
            {k: v for k, v in before.items() if k.parts[0] != "records"}
