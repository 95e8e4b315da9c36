"""Teacher SavedModels, manifests, schedules and the epoch-boundary switch (spec §6.6, §6.7, §9.4)."""

import gc
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.distiller import DistillationModel
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.teacher_schedule import TeacherSchedule, TeacherScheduleCallback
from pocketnet_tf.train.teachers import (
    ManifestEntry, SavedModelTeacher, TeacherError, export_savedmodel, read_manifest, write_manifest,
)
from tests.factory import dataset, labelled_images, randomize_weights, tiny_backbone


def _teacher_dir(tmp_path, name, seed, **kwargs):
    model = tiny_backbone(seed=seed, name=f"teacher_{name}", **kwargs)
    randomize_weights(model, seed=seed)
    path = export_savedmodel(model, tmp_path / name)
    return model, path


def test_export_load_round_trip_and_manifest(tmp_path):
    model, path = _teacher_dir(tmp_path, "t1", seed=1)
    teacher = SavedModelTeacher(path)
    assert teacher.input_shape == (8, 8, 3) and teacher.embedding_size == 4
    x, _ = labelled_images(5)
    np.testing.assert_allclose(np.asarray(teacher(tf.constant(x))), np.asarray(model(x, training=False)), atol=1e-5)
    assert not list(tmp_path.glob(".t1*"))  # no temporary left behind
    entries = [ManifestEntry(2, 20, "t2", 4, [8, 8, 3]), ManifestEntry(1, 10, "t1", 4, [8, 8, 3])]
    write_manifest(tmp_path / "manifest.json", entries)
    back = read_manifest(tmp_path / "manifest.json")
    assert [e.epoch for e in back] == [1, 2] and back[0].resolve(tmp_path) == tmp_path / "t1"


def test_manifest_errors_name_the_file(tmp_path):
    bad = tmp_path / "manifest.json"
    with pytest.raises(FileNotFoundError, match="manifest.json: teacher manifest not found"):
        read_manifest(bad)
    bad.write_text("{not json")
    with pytest.raises(TeacherError, match="manifest.json: not a readable JSON"):
        read_manifest(bad)
    bad.write_text(json.dumps({"format": "pocketnet_tf.teacher_manifest", "version": 1,
                               "entries": [{"epoch": 1, "path": "a"}]}))
    with pytest.raises(TeacherError, match="entry 0 is malformed"):
        read_manifest(bad)


def test_schedule_policies(tmp_path):
    write_manifest(tmp_path / "m.json", [ManifestEntry(e, 10 * e, f"e{e}", 4, [8, 8, 3]) for e in (1, 2, 3, 4)])
    per_epoch = TeacherSchedule.from_manifest(tmp_path / "m.json", 3)
    assert [p.name for p in per_epoch.paths] == ["e1", "e2", "e3"]  # student epoch e <- teacher epoch e+1
    spread = TeacherSchedule.from_manifest(tmp_path / "m.json", 8, policy="spread")
    assert [p.name for p in spread.paths] == ["e1", "e1", "e2", "e2", "e3", "e3", "e4", "e4"]
    assert [p.name for p in TeacherSchedule.final_from_manifest(tmp_path / "m.json", 2).paths] == ["e4", "e4"]
    with pytest.raises(TeacherError, match=r"needs teacher checkpoints for epochs 1\.\.5, only 4 available"):
        TeacherSchedule.from_manifest(tmp_path / "m.json", 5)
    write_manifest(tmp_path / "gap.json", [ManifestEntry(e, 0, f"e{e}", 4, [8, 8, 3]) for e in (1, 3)])
    with pytest.raises(TeacherError, match=r"no teacher checkpoint for teacher epoch 2 \(manifest has epochs \[1, 3\]\)"):
        TeacherSchedule.from_manifest(tmp_path / "gap.json", 3)


@pytest.mark.parametrize("problem", ["missing", "embedding", "input_shape", "not_savedmodel"])
def test_schedule_validation_fails_before_the_first_step(problem, tmp_path):
    _, good = _teacher_dir(tmp_path, "good", seed=1)
    if problem == "missing":
        bad, message = tmp_path / "nowhere", "nowhere: teacher SavedModel not found"
    elif problem == "embedding":
        _, bad = _teacher_dir(tmp_path, "bad", seed=2, embedding_size=6)
        message = "bad: teacher embedding size 6 does not match the student's 4"
    elif problem == "input_shape":
        _, bad = _teacher_dir(tmp_path, "bad", seed=2, input_size=12)
        message = r"bad: teacher input shape \[12, 12, 3\] does not match the student's \[8, 8, 3\]"
    else:
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "weights.bin").write_bytes(b"junk")
        message = "bad: not a SavedModel directory"
    schedule = TeacherSchedule.from_paths([good, good, bad], epochs=3)
    model = DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=good)
    model.compile(optimizer=TorchSGD(0.1))
    x, y = labelled_images(8)
    with pytest.raises((TeacherError, FileNotFoundError), match=message):
        model.fit(dataset(x, y, 4), epochs=3, callbacks=[TeacherScheduleCallback(schedule)], verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 0  # nothing trained with a broken schedule


class _RecordTeacherOutput(keras.callbacks.Callback):
    """Records what the compiled step's teacher produces, through the logged KD term."""

    def __init__(self):
        super().__init__()
        self.kd = []

    def on_epoch_end(self, epoch, logs=None):
        self.kd.append(float(logs["kd_loss"]))


def test_the_compiled_step_sees_the_teacher_change_at_epoch_boundaries(tmp_path):
    models, paths = zip(*[_teacher_dir(tmp_path, f"t{i}", seed=10 * i + 1) for i in range(3)])
    schedule = TeacherSchedule.from_paths([paths[0], paths[1], paths[2], paths[0]], epochs=4)
    x, y = labelled_images(8)
    student = tiny_backbone()
    model = DistillationModel(student, ArcMarginHead(3), teacher=paths[0], kd_weight=100.0)
    # LR 0: the student stays fixed, so each epoch's KD term is a function of the teacher alone.
    model.compile(optimizer=TorchSGD(0.0, weight_decay=0.0))
    recorder = _RecordTeacherOutput()
    callback = TeacherScheduleCallback(schedule)
    model.fit(dataset(x, y, 8), epochs=4, callbacks=[callback, recorder], verbose=0)

    s = np.asarray(student(x, training=True))
    s = s / np.linalg.norm(s, axis=1, keepdims=True)
    expected = []
    for m in (models[0], models[1], models[2], models[0]):
        t = np.asarray(m(x, training=False))
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        expected.append(100.0 * np.mean((s - t) ** 2))
    assert len({round(e, 4) for e in expected[:3]}) == 3  # the teachers really differ
    np.testing.assert_allclose(recorder.kd, expected, rtol=1e-4)
    assert [how for _, _, how in callback.switches] == ["kept", "assigned", "assigned", "assigned"]
    # Switching assigned weights: one traced train function, one live teacher object.
    assert model.train_function is not None
    gc.collect()
    assert sum(isinstance(o, SavedModelTeacher) for o in gc.get_objects()) == 1


def test_a_different_architecture_forces_a_retrace_and_is_still_seen(tmp_path):
    m0, p0 = _teacher_dir(tmp_path, "small", seed=1)
    inputs = keras.Input((8, 8, 3))
    other = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(inputs)), name="other")
    p1 = export_savedmodel(other, tmp_path / "other")
    x, y = labelled_images(8)
    student = tiny_backbone()
    model = DistillationModel(student, ArcMarginHead(3), teacher=p0)
    model.compile(optimizer=TorchSGD(0.0, weight_decay=0.0))
    recorder = _RecordTeacherOutput()
    callback = TeacherScheduleCallback(TeacherSchedule.from_paths([p0, p1], epochs=2))
    model.fit(dataset(x, y, 8), epochs=2, callbacks=[callback, recorder], verbose=0)
    s = np.asarray(student(x, training=True))
    t = np.asarray(other(x))
    s, t = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (s, t))
    assert recorder.kd[1] == pytest.approx(100.0 * np.mean((s - t) ** 2), rel=1e-4)
    assert [how for _, _, how in callback.switches] == ["kept", "retraced"]
