"""Partial FC in training: two replicas (logical CPUs) and two worker processes equal one device
with the replicated head; a run checkpointed on two replicas resumes on one (re-sharded).

As in test_distribute.py the student has no BatchNormalization (BN statistics are per replica),
a small clip norm keeps the backbone-only clipping active, and the optimiser is TorchSGD with
momentum, coupled weight decay and an LR drop, so the head's own per-replica update is checked
against the optimiser's update of the replicated head step by step.
"""

import json
import os
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.layers.partial_fc import PartialFCHead
from pocketnet_tf.train.callbacks import ResumableCheckpoint, read_checkpoint_state, restore_checkpoint
from pocketnet_tf.train.distiller import DistillationModel
from pocketnet_tf.train.head_sharding import saved_head_is_sharded
from pocketnet_tf.train.loop import fit_epochs
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.schedules import EpochStepDecay
from tests.train.common import tiny_backbone

CLASSES = 5  # over 2 replicas: shards of 3, the last padded
SPEC = {"examples": 24, "batch_size": 8, "epochs": 2, "clip_norm": 0.05}


def build(spec, head):
    """The model every run trains (call under the strategy's scope); a Keras teacher adds the KD term."""
    keras.utils.set_random_seed(0)
    teacher = tiny_backbone(batch_norm_layers=False, seed=9, name="teacher")
    model = DistillationModel(tiny_backbone(batch_norm_layers=False), head, teacher=teacher)
    steps = spec["examples"] // spec["batch_size"]
    model.compile(optimizer=TorchSGD(EpochStepDecay(0.1, steps, [2]), clip_norm=spec["clip_norm"]))
    model.optimizer.build(model.trainable_variables)
    return model


def train_data(spec):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (spec["examples"], 8, 8, 3)).astype(np.float32)
    y = rng.permutation(np.arange(spec["examples"]) % CLASSES).astype(np.int32)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(spec["batch_size"])


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
    """One device, replicated ArcFace head: the run everything must equal."""
    model = build(SPEC, ArcMarginHead(CLASSES))
    init = {f"backbone_{i}": np.array(w) for i, w in enumerate(model.backbone.weights)}
    init["kernel"] = np.array(model.head.kernel)
    np.savez(tmp_path / "init.npz", **init)
    history = model.fit(train_data(SPEC), epochs=SPEC["epochs"], verbose=0).history
    kernel, momentum = head_state(model)
    assert np.abs(kernel - init["kernel"]).max() > 1e-3 and np.abs(momentum).max() > 1e-3  # the head moved
    return model, init, history


def _assert_same_training(backbone_weights, kernel, momentum, losses, reference, reference_history):
    for a, b in zip(backbone_weights, reference.backbone.weights):
        np.testing.assert_allclose(np.asarray(a), np.array(b), rtol=1e-4, atol=2e-6, err_msg=b.path)
    ref_kernel, ref_momentum = head_state(reference)
    np.testing.assert_allclose(kernel, ref_kernel, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(momentum, ref_momentum, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(losses, reference_history["loss"], rtol=1e-4)


def test_mirrored_partial_fc_equals_one_device_replicated_head(tmp_path):
    reference, init, history = _reference(tmp_path)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = build(SPEC, PartialFCHead(CLASSES))
    assert model.head.num_shards == 2 and len(model.optimizer.momentums) == len(model.backbone.trainable_variables)
    set_initial_weights(model, init)
    sharded = model.fit(train_data(SPEC), epochs=SPEC["epochs"], verbose=0).history
    np.testing.assert_allclose(sharded["kd_loss"], history["kd_loss"], rtol=1e-4)
    _assert_same_training(model.backbone.weights, *head_state(model), sharded["loss"], reference, history)


@pytest.mark.slow
def test_multi_worker_partial_fc_equals_one_device_replicated_head(tmp_path):
    """Two processes (MultiWorkerMirroredStrategy, one shard each): same training, and the chief's
    checkpoint (after GatherHeadShards on both workers) holds the full head."""
    from tests.train.test_distribute import _free_ports, _run_processes

    reference, _, history = _reference(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(SPEC))
    ports = ",".join(str(p) for p in _free_ports(2))
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo), "CUDA_VISIBLE_DEVICES": ""}
    _run_processes([([sys.executable, "-m", "tests.train.partial_fc_worker", str(tmp_path), str(i), ports], env, repo)
                    for i in range(2)], timeout=420)
    result = np.load(tmp_path / "result.npz")
    backbone = [result[f"backbone_{i}"] for i in range(len(reference.backbone.weights))]
    _assert_same_training(backbone, result["kernel"], result["momentum"], result["loss"], reference, history)
    restored = build(SPEC, PartialFCHead(CLASSES))
    restored.load_weights(tmp_path / "chief.weights.h5")
    np.testing.assert_allclose(restored.head.full_value(restored.head.kernel), result["kernel"], rtol=0, atol=0)


SPE, EPOCHS = 3, 3


class _Interrupt(Exception):
    pass


class _KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise _Interrupt


def _epoch_dataset(epoch):
    return train_data(SPEC).shuffle(3, seed=100 + epoch)


def test_checkpoint_of_two_replicas_resumes_on_one(tmp_path):
    spec = dict(SPEC, epochs=EPOCHS)
    reference = build(spec, PartialFCHead(CLASSES))  # one device, one shard
    init = {f"backbone_{i}": np.array(w) for i, w in enumerate(reference.backbone.weights)}
    init["kernel"] = reference.head.full_value(reference.head.kernel)
    fit_epochs(reference, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        interrupted = build(spec, PartialFCHead(CLASSES))
    set_initial_weights(interrupted, init)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(_Interrupt):
        fit_epochs(interrupted, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0,
                   callbacks=[ResumableCheckpoint(ckpt, SPE, every_steps=4), _KillAt(5)])
    state = read_checkpoint_state(ckpt)
    assert state["global_step"] == 4 and saved_head_is_sharded(state["weights_path"])

    keras.utils.set_random_seed(123)
    resumed = build(spec, PartialFCHead(CLASSES))  # default strategy: one replica holds every centre
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
