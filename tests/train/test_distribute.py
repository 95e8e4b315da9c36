"""tf.distribute: two replicas (logical CPUs) and two worker processes equal one device (spec §6.3).

The student here has no BatchNormalization: BN batch statistics are per replica (as in the
original's DDP without SyncBN, spec §9.22), so with BN a 2x4 split legitimately differs from one
batch of 8. Everything else that distribution touches is checked: loss scaling of both loss
terms, the cross-replica gradient sum, the backbone-only clipping after that sum (a small
clip norm keeps it active), PyTorch-style weight decay and momentum, and the SavedModel teacher
called inside the replica function.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.distiller import DistillationModel
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.schedules import EpochStepDecay
from pocketnet_tf.train.teachers import SavedModelTeacher, export_savedmodel
from tests.factory import randomize_weights, tiny_backbone
from tests.helpers import two_cpu_strategy

SPEC = {"examples": 24, "batch_size": 8, "epochs": 2, "clip_norm": 0.05}


def build(spec, teacher, head=None):
    """The model every run trains (call under the strategy's scope); ``head`` defaults to ArcFace."""
    keras.utils.set_random_seed(0)
    model = DistillationModel(tiny_backbone(batch_norm_layers=False), head or ArcMarginHead(3), teacher=teacher)
    steps = spec["examples"] // spec["batch_size"]
    model.compile(optimizer=TorchSGD(EpochStepDecay(0.1, steps, [2]), clip_norm=spec["clip_norm"]))
    model.optimizer.build(model.trainable_variables)
    return model


def train_data(spec):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (spec["examples"], 8, 8, 3)).astype(np.float32)
    y = (np.arange(spec["examples"]) % 3).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(spec["batch_size"])


def _teacher(tmp_path):
    teacher = tiny_backbone(seed=9, name="teacher")
    randomize_weights(teacher, seed=9)
    return str(export_savedmodel(teacher, tmp_path / "teacher"))


def _single_device(tmp_path, teacher):
    model = build(SPEC, teacher)
    model.save_weights(tmp_path / "init.weights.h5")
    history = model.fit(train_data(SPEC), epochs=SPEC["epochs"], verbose=0)
    return model, history.history


def test_mirrored_two_replicas_equal_one_device(tmp_path):
    teacher = _teacher(tmp_path)
    single, single_hist = _single_device(tmp_path, teacher)
    # The clip is active (otherwise clipping before/after the replica sum would look alike).
    x, y = next(iter(train_data(SPEC)))
    fresh = build(SPEC, teacher)
    fresh.load_weights(tmp_path / "init.weights.h5")
    with tf.GradientTape() as tape:
        total, _, _ = fresh.compute_losses(x, y, training=True, teacher_embeddings=fresh._teacher_embeddings(x))
    assert float(tf.linalg.global_norm(tape.gradient(total, fresh.backbone.trainable_variables))) > 10 * SPEC["clip_norm"]

    strategy = two_cpu_strategy()
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = build(SPEC, teacher)
    mirrored.load_weights(tmp_path / "init.weights.h5")
    mirrored_hist = mirrored.fit(train_data(SPEC), epochs=SPEC["epochs"], verbose=0).history
    moved = max(float(np.abs(np.array(a) - np.array(b)).max())
                for a, b in zip(single.weights, fresh.weights))
    assert moved > 1e-3  # training changed the weights noticeably
    for a, b in zip(mirrored.weights, single.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=2e-6, err_msg=a.path)
    for key in ("loss", "ce_loss", "kd_loss"):
        np.testing.assert_allclose(mirrored_hist[key], single_hist[key], rtol=1e-4)
    # A backbone trained under the strategy exports as a teacher SavedModel like any other.
    exported = SavedModelTeacher(export_savedmodel(mirrored.backbone, tmp_path / "exported"))
    np.testing.assert_allclose(np.asarray(exported(x)), np.asarray(single.backbone(x, training=False)),
                               rtol=1e-4, atol=1e-5)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _run_processes(commands, timeout):
    """Starts ``(argv, env, cwd)`` processes together (the workers of one cluster), waits for all
    and asserts each exited 0, showing the tail of their output otherwise."""
    procs = [subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for argv, env, cwd in commands]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=timeout)
            outputs.append(out.decode(errors="replace")[-3000:])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n----\n".join(outputs)


def run_two_workers(module, directory, timeout=420):
    """Writes SPEC to ``directory/spec.json`` and runs ``python -m module directory INDEX PORTS``
    as the two workers of a cluster on 127.0.0.1."""
    (directory / "spec.json").write_text(json.dumps(SPEC))
    ports = ",".join(str(p) for p in _free_ports(2))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "CUDA_VISIBLE_DEVICES": ""}
    _run_processes([([sys.executable, "-m", module, str(directory), str(i), ports], env, repo) for i in range(2)],
                   timeout=timeout)


@pytest.mark.slow
def test_multi_worker_two_processes_equal_one_device(tmp_path):
    teacher = _teacher(tmp_path)
    single, single_hist = _single_device(tmp_path, teacher)
    run_two_workers("tests.train.distributed_worker", tmp_path)
    result = np.load(tmp_path / "result.npz")
    for i, w in enumerate(single.weights):
        np.testing.assert_allclose(result[f"arr_{i}"], np.array(w), rtol=1e-4, atol=2e-6, err_msg=w.path)
    np.testing.assert_allclose(result["loss"], single_hist["loss"], rtol=1e-4)


_MIRRORED_RUN = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pocketnet_tf.train.config import TrainConfig
from pocketnet_tf.train import runner
config = TrainConfig.from_flags(dict(
    workdir=sys.argv[1], synthesize_data=True, synth_identities=4, synth_images_per_identity=8,
    synth_val_identities=4, synth_val_pairs=20, eval_bins="synth_val", input_size=32, model="PocketNetS-128",
    channels=2, num_cells=3, embedding_size=16, batch_size=8, epochs=1, lr_milestones="2", verbose=0,
    strategy="mirrored",
))
runner.ensure_synthetic_data(config)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
results = runner.train_stage(config, strategy)
print("RESULTS" + json.dumps({"steps_per_epoch": results["steps_per_epoch"],
                              "loss": float(results["history"]["1"]["loss"]),
                              "accuracy": results["after"]["synth_val"]["accuracy"]}))
"""


@pytest.mark.slow
def test_training_command_under_mirrored_strategy(tmp_path):
    """The CLI's own path (pipeline -> strategy scope -> fit -> checkpoint) on two logical CPUs.

    Runs in a fresh process: collective ops of MirroredStrategy instances created by earlier tests
    in the same process interfere with a new strategy's (CollectiveReduceV2 errors), which says
    nothing about the training path itself.
    """
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _MIRRORED_RUN, str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULTS"))
    results = json.loads(line[len("RESULTS"):])
    assert results["steps_per_epoch"] == 4 and np.isfinite(results["loss"])
    assert 0.0 <= results["accuracy"] <= 1.0
    state = json.loads((tmp_path / "run" / "checkpoints" / "state.json").read_text())
    assert state["global_step"] == 4


@pytest.mark.slow
def test_training_command_under_multi_worker_strategy(tmp_path):
    """``python -m pocketnet_tf.train --strategy=multi_worker`` as a user starts it on two hosts:
    the same command twice, TF_CONFIG naming each process's task. Only the chief writes the run's
    files; both processes finish; the global batch (and so the steps per epoch) is that of a
    single-process run. The losses are not equal to the single run's: BatchNorm statistics are
    per replica (4 images each here), as in the original's DDP without SyncBN; exact equality of
    the distributed step itself is shown by test_multi_worker_two_processes_equal_one_device."""
    from tests.cli_support import ENV, REPO, run_module

    data = tmp_path / "data"
    common = ["--synthesize_data", f"--data={data}", "--synth_identities=4", "--synth_images_per_identity=8",
              "--synth_val_identities=4", "--synth_val_pairs=20", "--eval_bins=synth_val", "--input_size=32",
              "--model=PocketNetS-128", "--channels=2", "--num_cells=3", "--embedding_size=16", "--batch_size=8",
              "--epochs=1", "--lr_milestones=2", "--verbose=0", "--seed=3"]
    single = run_module("pocketnet_tf.train", [*common, f"--workdir={tmp_path / 'single'}"], timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    _run_processes([([sys.executable, "-m", "pocketnet_tf.train", *common, "--strategy=multi_worker",
                      f"--workdir={tmp_path / f'worker{i}'}"],
                     {**ENV, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
                     REPO) for i in range(2)], timeout=600)
    chief = json.loads((tmp_path / "worker0" / "results.json").read_text())
    alone = json.loads((tmp_path / "single" / "results.json").read_text())
    assert (tmp_path / "worker0" / "student.keras").is_file()
    assert not (tmp_path / "worker1" / "student.keras").exists() and not (tmp_path / "worker1" / "results.json").exists()
    assert chief["steps_per_epoch"] == alone["steps_per_epoch"]
    assert np.isfinite(chief["history"]["1"]["loss"]) and chief["history"]["1"]["loss"] > 0
    assert 0.0 <= chief["after"]["synth_val"]["accuracy"] <= 1.0
    assert "2 replica(s)" in (tmp_path / "worker0" / "train.log").read_text()
