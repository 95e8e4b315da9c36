"""Crash-safe checkpoints, exact resume, per-epoch teacher export (spec §6.9, §9.5)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.callbacks import (
    ResumableCheckpoint, TeacherExporter, read_checkpoint_state, restore_checkpoint,
)
from pocketnet_tf.train.distiller import MarginModel
from pocketnet_tf.train.loop import fit_epochs
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.schedules import EpochStepDecay
from pocketnet_tf.train.teachers import SavedModelTeacher, read_manifest
from tests.factory import labelled_images, tiny_backbone, weight_values

SPE, EPOCHS = 4, 3


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = MarginModel(tiny_backbone(seed=seed), ArcMarginHead(3))
    model.compile(optimizer=TorchSGD(EpochStepDecay(0.1, SPE, [2]), clip_norm=5.0))
    model.optimizer.build(model.trainable_variables)
    tf.random.set_seed(0)  # the data order (global + per-epoch op seed) must not depend on the init seed
    return model


X, Y = labelled_images(16, seed=2)


def _epoch_dataset(epoch):
    return tf.data.Dataset.from_tensor_slices((X, Y)).shuffle(16, seed=100 + epoch).batch(4)


class _Interrupt(Exception):
    pass


class _KillAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step:
            raise _Interrupt


class _Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.begun = []

    def on_epoch_begin(self, epoch, logs=None):
        self.begun.append(epoch)


def test_resume_mid_epoch_continues_exactly(tmp_path):
    reference = _model(0)
    fit_epochs(reference, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0)

    ckpt = tmp_path / "ckpt"
    interrupted = _model(0)
    with pytest.raises(_Interrupt):
        fit_epochs(interrupted, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0,
                   callbacks=[ResumableCheckpoint(ckpt, SPE, every_steps=3), _KillAt(7)])
    state = read_checkpoint_state(ckpt)
    assert (state["global_step"], state["epoch"], state["step_in_epoch"]) == (6, 1, 2)

    resumed = _model(123)  # different initialisation: everything must come from the checkpoint
    step = restore_checkpoint(resumed, ckpt, SPE)
    assert step == 6
    epochs = _Epochs()
    histories = fit_epochs(resumed, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, initial_step=step,
                           verbose=0, callbacks=[ResumableCheckpoint(ckpt, SPE), epochs])
    assert epochs.begun == [1, 2] and len(histories) == 2
    assert int(resumed.optimizer.iterations.numpy()) == EPOCHS * SPE
    for a, b in zip(weight_values(resumed.weights), weight_values(reference.weights)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Optimiser state (momentum buffers) too.
    for a, b in zip(resumed.optimizer.variables, reference.optimizer.variables):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    assert read_checkpoint_state(ckpt)["global_step"] == EPOCHS * SPE
    assert len(list(ckpt.glob("ckpt-*.weights.h5"))) == 2  # older ones pruned


def test_resume_at_an_epoch_boundary_and_state_consistency(tmp_path):
    ckpt = tmp_path / "ckpt"
    model = _model(0)
    with pytest.raises(_Interrupt):
        fit_epochs(model, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0,
                   callbacks=[ResumableCheckpoint(ckpt, SPE), _KillAt(6)])
    # A kill during a later write leaves only a stray temporary: the state still names epoch 1's file.
    (ckpt / ".ckpt-0000000008.weights.h5.abc.tmp.weights.h5").write_bytes(b"partial")
    state = read_checkpoint_state(ckpt)
    assert state["global_step"] == SPE and state["epoch"] == 1 and state["step_in_epoch"] == 0
    resumed = _model(5)
    epochs = _Epochs()
    fit_epochs(resumed, _epoch_dataset, epochs=EPOCHS, steps_per_epoch=SPE, verbose=0,
               initial_step=restore_checkpoint(resumed, ckpt, SPE), callbacks=[epochs])
    assert epochs.begun == [1, 2]


def test_restore_errors(tmp_path):
    model = _model(0)
    assert restore_checkpoint(model, tmp_path / "none", SPE) == 0
    ckpt = tmp_path / "ckpt"
    fit_epochs(model, _epoch_dataset, epochs=1, steps_per_epoch=SPE, verbose=0, callbacks=[ResumableCheckpoint(ckpt, SPE)])
    with pytest.raises(ValueError, match="written with 4 steps per epoch, this run has 5"):
        restore_checkpoint(_model(0), ckpt, 5)
    state = json.loads((ckpt / "state.json").read_text())
    (ckpt / state["weights"]).unlink()
    with pytest.raises(FileNotFoundError, match="which does not exist"):
        read_checkpoint_state(ckpt)


def test_teacher_exporter_writes_a_savedmodel_and_manifest_entry_per_epoch(tmp_path):
    model = _model(0)
    outputs = {}

    class _Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            outputs[epoch + 1] = np.asarray(model.backbone(X[:4], training=False))

    fit_epochs(model, _epoch_dataset, epochs=2, steps_per_epoch=SPE, verbose=0,
               callbacks=[TeacherExporter(model.backbone, tmp_path / "teachers"), _Snapshot()])
    entries = read_manifest(tmp_path / "teachers" / "manifest.json")
    assert [(e.epoch, e.step, e.path, e.embedding_size, e.input_shape) for e in entries] == [
        (1, 4, "epoch_001", 4, [8, 8, 3]), (2, 8, "epoch_002", 4, [8, 8, 3])]
    for e in entries:
        teacher = SavedModelTeacher(e.resolve(tmp_path / "teachers"))
        np.testing.assert_allclose(np.asarray(teacher(tf.constant(X[:4]))), outputs[e.epoch], atol=1e-5)
