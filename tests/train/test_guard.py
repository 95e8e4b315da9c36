"""The divergence guard (spec of issue #12): a non-finite step stops training before anything good
is overwritten; checkpoints are finite; --resume falls back past a corrupt checkpoint; a teacher
with NaN weights and NaN/inf flags are refused; run records are kept per attempt."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from pocketnet_tf.train.config import TrainConfig
from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.run_records import write_run_records
from pocketnet_tf.train.callbacks import ResumableCheckpoint, read_checkpoint_state, restore_checkpoint
from pocketnet_tf.train.distiller import DistillationModel, MarginModel
from pocketnet_tf.train.guard import DivergenceError, DivergenceGuard
from pocketnet_tf.train.loop import fit_epochs
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.teachers import SavedModelTeacher, TeacherError, export_savedmodel
from tests.factory import labelled_images, tiny_backbone, weight_values
from tests.helpers import two_cpu_strategy

SPE = 4
X, Y = labelled_images(16, seed=2)


def _model(seed=0, strategy=None):
    keras.utils.set_random_seed(seed)
    with (strategy or tf.distribute.get_strategy()).scope():
        model = MarginModel(tiny_backbone(seed=seed), ArcMarginHead(3))
        model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0))
        model.optimizer.build(model.trainable_variables)
    return model


def _poisoned(bad_batch):
    """Epoch data whose ``bad_batch``-th batch (0-based, epoch 1) holds a NaN pixel."""
    def epoch_dataset(epoch):
        x = X.copy()
        if epoch == 1:
            x[bad_batch * 4 + 1, 0, 0, 0] = np.nan
        return tf.data.Dataset.from_tensor_slices((x, Y)).batch(4)
    return epoch_dataset


def test_non_finite_step_skips_update_and_stops_before_checkpoint(tmp_path):
    model = _model()
    ckpt = tmp_path / "ckpt"
    callbacks = [DivergenceGuard(), ResumableCheckpoint(ckpt, SPE, every_steps=1, keep=2)]
    fit_epochs(model, _poisoned(2), epochs=1, steps_per_epoch=SPE, callbacks=callbacks, verbose=0)
    before_bad = [np.array(v) for v in model.trainable_variables]
    with pytest.raises(DivergenceError, match=r"diverged at global step 7: ce_loss=nan, loss=nan"):
        fit_epochs(model, _poisoned(2), epochs=2, steps_per_epoch=SPE, initial_step=SPE, callbacks=callbacks,
                   verbose=0)
    # Steps 5 and 6 were checkpointed; the bad step 7 reached no checkpoint and no rotation.
    assert read_checkpoint_state(ckpt)["global_step"] == 6
    assert sorted(p.name for p in ckpt.glob("ckpt-*")) == ["ckpt-0000000005.weights.h5", "ckpt-0000000006.weights.h5"]
    # The non-finite update was not applied: every trainable weight is finite.
    assert all(np.isfinite(np.array(v)).all() for v in model.trainable_variables)
    assert any(not np.array_equal(a, np.array(v)) for a, v in zip(before_bad, model.trainable_variables))


def test_two_replicas_agree_on_skipping():
    strategy = two_cpu_strategy()
    model = _model(strategy=strategy)
    x = X[:4].copy()
    x[3, 0, 0, 0] = np.inf  # only the second replica's half is bad
    before = weight_values(model.weights)
    with pytest.raises(DivergenceError, match="global step 1"):
        model.fit(tf.data.Dataset.from_tensor_slices((x, Y[:4])).batch(4), epochs=1, verbose=0,
                  callbacks=[DivergenceGuard()])
    trainable = {v.path for v in model.trainable_variables}
    for w, old in zip(model.weights, before):
        if w.path in trainable:  # zero gradients + SGD with weight decay: finite, and unchanged but for decay
            np.testing.assert_allclose(np.array(w), old * (1 - 0.1 * 5e-4), rtol=1e-6, err_msg=w.path)


def test_checkpoint_refuses_non_finite_weights_and_keeps_the_last_good(tmp_path):
    model = _model()
    saver = ResumableCheckpoint(tmp_path, SPE, keep=1)
    saver.set_model(model)
    good = saver.save()
    good_bytes = good.read_bytes()
    model.optimizer.iterations.assign(5)
    model.backbone.get_layer("fc").kernel.assign(np.full((4, 4), np.nan, np.float32))
    with pytest.raises(DivergenceError, match="fc/kernel holds non-finite values; not saved"):
        saver.save()
    assert [p.name for p in tmp_path.glob("ckpt-*")] == [good.name] and good.read_bytes() == good_bytes
    assert read_checkpoint_state(tmp_path)["global_step"] == 0


def _two_checkpoints(tmp_path):
    model = _model()
    saver = ResumableCheckpoint(tmp_path, SPE, every_steps=2, keep=2)
    fit_epochs(model, _poisoned(99), epochs=1, steps_per_epoch=SPE, callbacks=[saver], verbose=0)
    return sorted(tmp_path.glob("ckpt-*"))


def test_resume_falls_back_past_a_corrupt_newest_checkpoint(tmp_path, caplog):
    older, newest = _two_checkpoints(tmp_path)
    assert (older.name, newest.name) == ("ckpt-0000000002.weights.h5", "ckpt-0000000004.weights.h5")
    newest.write_bytes(newest.read_bytes()[:300])  # truncated by a crash the state file did not see
    resumed = _model(seed=7)
    assert restore_checkpoint(resumed, tmp_path, SPE) == 2
    assert f"skipping checkpoint {newest}" in caplog.text
    assert f"fell back to the newest intact checkpoint {older}" in caplog.text
    # A damaged state.json falls back to the newest file (here: its successor then is the older one).
    (tmp_path / "state.json").write_text("{trunc")
    assert read_checkpoint_state(tmp_path)["weights_path"] == str(newest)
    assert restore_checkpoint(_model(seed=8), tmp_path, SPE) == 2
    older.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="no checkpoint could be restored: .*0004.*0002"):
        restore_checkpoint(_model(seed=9), tmp_path, SPE)


def test_teacher_with_nan_weights_or_output_is_refused(tmp_path):
    from pocketnet_tf.train.teacher_schedule import TeacherSchedule

    keras_teacher = tiny_backbone(seed=3)
    keras_teacher.get_layer("fc").kernel.assign(np.full((4, 4), np.nan, np.float32))
    path = export_savedmodel(keras_teacher, tmp_path / "nan_teacher")
    with pytest.raises(TeacherError, match=f"{path}: teacher weight .*fc/kernel.* holds NaN or inf values"):
        SavedModelTeacher(path).validate((8, 8, 3), 4)
    with pytest.raises(TeacherError, match="teacher tiny: teacher weight .*kernel holds NaN or inf"):
        DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=keras_teacher)
    # Finite weights, non-finite output (a negative BN variance): the schedule's probe run refuses it.
    broken = tiny_backbone(seed=4)
    broken.get_layer("bn").moving_variance.assign(-np.ones(4, np.float32))
    path = export_savedmodel(broken, tmp_path / "nan_output")
    with pytest.raises(TeacherError, match=f"{path}: the teacher's output on probe images is not finite"):
        TeacherSchedule.single(str(path), 1).validate((8, 8, 3), 4)
    TeacherSchedule.single(str(export_savedmodel(tiny_backbone(seed=5), tmp_path / "ok")), 1).validate((8, 8, 3), 4)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_float_flags_reject_non_finite(value):
    from pocketnet_tf.run_config import flag_fields
    from pocketnet_tf.train.flags import define_flags

    flag_values = flags.FlagValues()
    define_flags(flag_values)
    with pytest.raises(flags.IllegalFlagValueError, match="--base_lr must be a finite number"):
        flag_values(["train", "--workdir=w", f"--base_lr={value}"])
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    flag_values(["train", "--workdir=w", "--synthesize_data"])
    for bad in (float(value), -float(value)):
        values = {**flag_fields(TrainConfig, flag_values), "kd_weight": bad}
        with pytest.raises(ValueError, match=f"--kd_weight must be a finite number, received {bad}"):
            TrainConfig.from_flags(values)


def test_search_float_flags_reject_nan():
    from pocketnet_tf.search.flags import define_flags

    flag_values = flags.FlagValues()
    define_flags(flag_values)
    with pytest.raises(flags.IllegalFlagValueError, match="--alpha_lr must be a finite number"):
        flag_values(["search", "--workdir=w", "--alpha_lr=nan"])


def test_run_records_keep_every_attempt(tmp_path):
    (tmp_path / "flags.txt").write_text("--base_lr=0.1\n")  # a run directory from before numbered records
    first = TrainConfig.from_flags({"workdir": str(tmp_path), "synthesize_data": True, "base_lr": 0.2})
    second = TrainConfig.from_flags({"workdir": str(tmp_path), "synthesize_data": True, "base_lr": 0.3})
    assert write_run_records(tmp_path, first).name == "attempt-002"
    assert write_run_records(tmp_path, second).name == "attempt-003"
    records = tmp_path / "records"
    assert (records / "attempt-001" / "flags.txt").read_text() == "--base_lr=0.1\n"
    assert "--base_lr=0.2" in (records / "attempt-002" / "flags.txt").read_text()
    assert json.loads((records / "attempt-003" / "config.json").read_text())["base_lr"] == 0.3
    assert (tmp_path / "flags.txt").read_text() == (records / "attempt-003" / "flags.txt").read_text()


@pytest.mark.slow
def test_search_divergence_stops_before_any_result(tmp_path):
    from pathlib import Path

    from pocketnet_tf.search import runner as search_runner
    from pocketnet_tf.search.config import SearchConfig
    from pocketnet_tf.search.flags import define_flags

    values = flags.FlagValues()
    define_flags(values)
    configs = Path(__file__).resolve().parents[2] / "configs"
    values(["search", f"--flagfile={configs / 'search_quick.flags'}", f"--workdir={tmp_path / 'run'}",
            "--synth_identities=6", "--synth_images_per_identity=12", "--input_size=16", "--random_crop_from=18",
            "--channels=2", "--num_nodes=2", "--embedding_size=8", "--head_width=8", "--gdc_groups=2",
            "--batch_size=4", "--epochs=1", "--verbose=0", "--weight_lr=1e30", "--weight_grad_clip=0"])
    with pytest.raises(DivergenceError, match="diverged at global step"):
        search_runner.run(SearchConfig.from_flags(values))
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert results["status"] == "diverged" and "diverged at global step" in results["error"]
    assert not (run / "genotype.json").exists() and not list((run / "checkpoints").glob("ckpt-*"))
    assert (run / "flags.txt").is_file() and (run / "records" / "attempt-001" / "flags.txt").is_file()
