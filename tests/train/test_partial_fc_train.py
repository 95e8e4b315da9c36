"""Partial FC in training: two replicas (logical CPUs) and two worker processes equal one device
with the replicated head; a run checkpointed on two replicas resumes on one (re-sharded).

The model, data and SavedModel teacher are test_distribute.py's: no BatchNormalization (BN
statistics are per replica), a small clip norm keeping the backbone-only clipping active, TorchSGD
with momentum, coupled weight decay and an LR drop (so the head's own per-replica update is checked
against the optimiser's update of the replicated head), the KD term. 3 classes over 2 replicas:
shards of 2, the last one padded.
"""

import json

import keras
import numpy as np
import pytest

from pocketnet_tf.layers.partial_fc import PartialFCHead
from pocketnet_tf.train.callbacks import ResumableCheckpoint, read_checkpoint_state, restore_checkpoint
from pocketnet_tf.train.head_sharding import saved_head_is_sharded
from pocketnet_tf.train.loop import fit_epochs
from tests.helpers import two_cpu_strategy
from tests.train.test_distribute import SPEC, _teacher, build, run_two_workers, train_data
from tests.train.test_resume import _Interrupt, _KillAt

CLASSES = 3


def head_state(model):
    """``(centres [D, C], momentum [D, C])`` of either head."""
    if isinstance(model.head, PartialFCHead):
        return model.head.full_value(model.head.kernel), model.head.full_value(model.head.momentum)
    kernel = model.head.kernel
    momentum = next(m for m in model.optimizer.momentums if m.shape == kernel.shape)
    return np.array(kernel), np.array(momentum)


def set_initial_weights(model, init):
    model.backbone.set_weights([init[f"backbone_{i}"] for i in range(len(model.backbone.weights))])
    if isinstance(model.head, PartialFCHead):
        model.head.assign_full(model.head.kernel, init["kernel"])
    else:
        model.head.kernel.assign(init["kernel"])


def _reference(tmp_path):
    """One device, replicated ArcFace head: the run everything must equal (and its teacher)."""
    teacher = _teacher(tmp_path)
    model = build(SPEC, teacher)
    init = {f"backbone_{i}": np.array(w) for i, w in enumerate(model.backbone.weights)}
    init["kernel"] = np.array(model.head.kernel)
    np.savez(tmp_path / "init.npz", **init)
    history = model.fit(train_data(SPEC), epochs=SPEC["epochs"], verbose=0).history
    kernel, momentum = head_state(model)
    assert np.abs(kernel - init["kernel"]).max() > 1e-3 and np.abs(momentum).max() > 1e-3  # the head moved
    return model, init, history, teacher


def _assert_same_training(backbone_weights, kernel, momentum, losses, reference, reference_history):
    for a, b in zip(backbone_weights, reference.backbone.weights):
        np.testing.assert_allclose(np.asarray(a), np.array(b), rtol=1e-4, atol=2e-6, err_msg=b.path)
    ref_kernel, ref_momentum = head_state(reference)
    np.testing.assert_allclose(kernel, ref_kernel, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(momentum, ref_momentum, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(losses, reference_history["loss"], rtol=1e-4)


def test_mirrored_partial_fc_equals_one_device_replicated_head(tmp_path):
    reference, init, history, teacher = _reference(tmp_path)
    strategy = two_cpu_strategy()
    with strategy.scope():
        model = build(SPEC, teacher, PartialFCHead(CLASSES))
    assert model.head.num_shards == 2 and len(model.optimizer.momentums) == len(model.backbone.trainable_variables)
    set_initial_weights(model, init)
    sharded = model.fit(train_data(SPEC), epochs=SPEC["epochs"], verbose=0).history
    np.testing.assert_allclose(sharded["kd_loss"], history["kd_loss"], rtol=1e-4)
    _assert_same_training(model.backbone.weights, *head_state(model), sharded["loss"], reference, history)


@pytest.mark.slow
def test_multi_worker_partial_fc_equals_one_device_replicated_head(tmp_path):
    """Two processes (MultiWorkerMirroredStrategy, one shard each): same training, and the chief's
    checkpoint (after GatherHeadShards on both workers) holds the full head."""
    reference, _, history, _ = _reference(tmp_path)
    run_two_workers("tests.train.partial_fc_worker", tmp_path)
    result = np.load(tmp_path / "result.npz")
    backbone = [result[f"backbone_{i}"] for i in range(len(reference.backbone.weights))]
    _assert_same_training(backbone, result["kernel"], result["momentum"], result["loss"], reference, history)
    restored = build(SPEC, None, PartialFCHead(CLASSES))
    restored.load_weights(tmp_path / "chief.weights.h5")
    np.testing.assert_allclose(restored.head.full_value(restored.head.kernel), result["kernel"], rtol=0, atol=0)


SPE, EPOCHS = 3, 3


def _epoch_dataset(epoch):
    return train_data(SPEC).shuffle(3, seed=100 + epoch)


def test_checkpoint_of_two_replicas_resumes_on_one(tmp_path):
    spec = dict(SPEC, epochs=EPOCHS)
    reference = build(spec, None, PartialFCHead(CLASSES))  # one device, one shard
    init = {f"backbone_{i}": np.array(w) for i, w in enumerate(reference.backbone.weights)}
    init["kernel"] = reference.head.full_value(reference.head.kernel)
    fit_epochs(reference, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0)

    strategy = two_cpu_strategy()
    with strategy.scope():
        interrupted = build(spec, None, PartialFCHead(CLASSES))
    set_initial_weights(interrupted, init)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Interrupt):
        fit_epochs(interrupted, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0,
                   callbacks=[ResumableCheckpoint(ckpt, SPE, every_steps=4), _KillAt(5)])
    state = read_checkpoint_state(ckpt)
    assert state["global_step"] == 4 and saved_head_is_sharded(state["weights_path"])

    keras.utils.set_random_seed(123)
    resumed = build(spec, None, PartialFCHead(CLASSES))  # default strategy: one replica holds every centre
    assert resumed.head.num_shards == 1
    step = restore_checkpoint(resumed, ckpt, SPE)
    assert step == 4
    fit_epochs(resumed, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, initial_step=step, verbose=0)
    for a, b in zip(resumed.weights, reference.weights):
        if not isinstance(a, keras.Variable) or a.path.startswith(resumed.head.name):
            continue
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=2e-6, err_msg=a.path)
    for a, b in zip(head_state(resumed), head_state(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    assert int(resumed.optimizer.iterations.numpy()) == SPE * EPOCHS


@pytest.mark.slow
def test_cli_killed_on_two_logical_cpus_resumes_on_one(tmp_path):
    """``python -m pocketnet_tf.train --strategy=mirrored --logical_cpus=2 --head_sample_rate=0.5``
    SIGKILLed after a checkpoint, then resumed with ``--strategy=default`` (one replica): the
    Partial FC head is kept (auto) and re-sharded, and the run completes."""
    import signal

    from tests.cli_support import kill_at_checkpoint, run_module

    workdir = tmp_path / "run"
    args = ["--synthesize_data", "--synth_identities=6", "--synth_images_per_identity=8", "--synth_val_pairs=0",
            "--input_size=32", "--model=PocketNetS-128", "--channels=2", "--num_cells=3", "--embedding_size=8",
            "--batch_size=4", "--epochs=2", "--lr_milestones=2", "--checkpoint_every_steps=3", "--verbose=0",
            "--head_sample_rate=0.5", f"--workdir={workdir}"]
    state, returncode = kill_at_checkpoint(
        "pocketnet_tf.train", [*args, "--strategy=mirrored", "--logical_cpus=2"],
        workdir / "checkpoints" / "state.json", lambda st: st["global_step"] >= 3, 600)
    assert state is not None and returncode == -signal.SIGKILL
    killed_at = json.loads((workdir / "checkpoints" / "state.json").read_text())["global_step"]
    assert 3 <= killed_at < 24 and saved_head_is_sharded(workdir / "checkpoints" / f"ckpt-{killed_at:010d}.weights.h5")
    resumed = run_module("pocketnet_tf.train", [*args, "--strategy=default", "--resume"], timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    log = (workdir / "train.log").read_text()
    assert "6 classes in 2 shard(s) of 3, sample rate 0.5" in log and "6 classes in 1 shard(s) of 6" in log
    assert f"resumed from {workdir / 'checkpoints'}" in log and f"at global step {killed_at} " in log
    final = json.loads((workdir / "checkpoints" / "state.json").read_text())
    assert final["global_step"] == 24
    assert np.isfinite(json.loads((workdir / "results.json").read_text())["history"]["2"]["loss"])


def test_config_checks_head_sharding_flags(tmp_path):
    from pocketnet_tf.train.config import TrainConfig

    base = dict(workdir=str(tmp_path), synthesize_data=True)
    assert TrainConfig.from_flags(dict(base, head_sample_rate=0.3)).head_sharding == "auto"
    with pytest.raises(ValueError, match="use --head_sharding=auto"):
        TrainConfig.from_flags(dict(base, head_sharding="none", head_sample_rate=0.5))
    with pytest.raises(ValueError, match=r"--head_sample_rate in \(0, 1\]"):
        TrainConfig.from_flags(dict(base, head_sample_rate=0.0))


@pytest.mark.slow
def test_benchmark_head_command_reports_bytes_per_replica():
    """``python -m pocketnet_tf.benchmark head`` on 2 logical CPUs: one JSON object; a replica of
    the sharded head holds ceil(C/2) centres + momentum, the replicated head all C of both."""
    from tests.cli_support import run_module

    common = ["head", "--num-classes=1001", "--embedding-size=8", "--batch-size=4", "--replicas=2", "--steps=2",
              "--warmup=1", "--json"]
    results = {}
    for sharding in ("auto", "none"):
        proc = run_module("pocketnet_tf.benchmark", [*common, f"--head-sharding={sharding}"], timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[sharding] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results["auto"]["head_bytes_per_replica"] == 501 * 8 * 4 * 2
    assert results["none"]["head_bytes_per_replica"] == 1001 * 8 * 4 * 2
    assert "2 shard(s) of 501" in results["auto"]["head"] and results["none"]["head"].startswith("ArcMarginHead")
    assert all(r["ms_per_step"] > 0 and r["replicas"] == 2 for r in results.values())
    bad = run_module("pocketnet_tf.benchmark", [*common[:3], "--batch-size=3", "--replicas=2"], timeout=300)
    assert bad.returncode == 2 and "not divisible by --replicas=2" in bad.stderr
