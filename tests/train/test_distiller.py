"""MarginModel / DistillationModel: loss terms, gradients, frozen teacher, plain model.fit (spec §6.6)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead, CosMarginHead
from pocketnet_tf.train.distiller import DistillationModel, MarginModel
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.teachers import SavedModelTeacher, TeacherError, export_savedmodel
from tests.factory import dataset, labelled_images, randomize_weights, tiny_backbone, weight_values
from tests.helpers import two_cpu_strategy


def _l2n(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.fixture
def keras_teacher():
    teacher = tiny_backbone(seed=7, name="teacher")
    randomize_weights(teacher, seed=3)
    return teacher


def test_loss_terms_match_numpy(keras_teacher):
    x, y = labelled_images(6)
    model = DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=keras_teacher, kd_weight=100.0)
    total, terms, _ = model.compute_losses(x, y, training=False, teacher_embeddings=model._teacher_embeddings(x))
    s = np.asarray(model.backbone(x, training=False))
    t = np.asarray(keras_teacher(x, training=False))
    logits = np.asarray(model.head(s, y))
    ce = -_log_softmax(logits)[np.arange(len(y)), y].mean()
    kd = 100.0 * np.mean((_l2n(s) - _l2n(t)) ** 2)
    # Spec §6.6: the same as 100·(2 - 2cos)/emb averaged over the batch.
    cos = np.sum(_l2n(s) * _l2n(t), axis=1)
    assert kd == pytest.approx(np.mean(100.0 * (2 - 2 * cos) / s.shape[1]), rel=1e-6)
    assert float(terms["ce_loss"]) == pytest.approx(ce, rel=1e-5)
    assert float(terms["kd_loss"]) == pytest.approx(kd, rel=1e-5)
    assert float(total) == pytest.approx(ce + kd, rel=1e-5)


@pytest.mark.parametrize("kind", ["keras", "savedmodel"])
def test_every_student_variable_gets_a_gradient_and_the_teacher_none(kind, keras_teacher, tmp_path):
    teacher = keras_teacher
    if kind == "savedmodel":
        export_savedmodel(keras_teacher, tmp_path / "teacher")
        teacher = str(tmp_path / "teacher")
    x, y = labelled_images(6)
    model = DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=teacher)
    student_vars = model.backbone.trainable_variables + model.head.trainable_variables
    teacher_vars = model.teacher.variables
    assert teacher_vars and not {id(v) for v in teacher_vars} & {id(v) for v in model.weights}
    with tf.GradientTape(persistent=True) as tape:
        for v in teacher_vars:
            tape.watch(v if isinstance(v, tf.Variable) else v.value)
        total, terms, _ = model.compute_losses(x, y, training=True, teacher_embeddings=model._teacher_embeddings(x))
    grads = tape.gradient(total, student_vars)
    assert all(g is not None and float(tf.norm(g)) > 0 for g in grads), [v.path for v, g in zip(student_vars, grads)]
    teacher_grads = tape.gradient(total, [v if isinstance(v, tf.Variable) else v.value for v in teacher_vars])
    assert all(g is None for g in teacher_grads)
    # The KD term alone reaches every backbone variable too.
    kd_grads = tape.gradient(terms["kd_loss"], model.backbone.trainable_variables)
    assert all(g is not None and float(tf.norm(g)) > 0 for g in kd_grads)


@pytest.mark.parametrize("kind", ["keras", "savedmodel"])
def test_teacher_is_bit_identical_after_fit(kind, keras_teacher, tmp_path):
    teacher = keras_teacher
    if kind == "savedmodel":
        export_savedmodel(keras_teacher, tmp_path / "teacher")
        teacher = SavedModelTeacher(tmp_path / "teacher")
    before = [np.array(v) for v in teacher.variables] if kind == "savedmodel" else weight_values(keras_teacher.weights)
    x, y = labelled_images(16)
    model = DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=teacher)
    model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0))
    student_before = weight_values(model.backbone.weights)
    history = model.fit(dataset(x, y, 8), epochs=2, verbose=0)
    after = [np.array(v) for v in teacher.variables] if kind == "savedmodel" else weight_values(keras_teacher.weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert any(not np.array_equal(a, b) for a, b in zip(student_before, weight_values(model.backbone.weights)))
    assert set(history.history) == {"loss", "ce_loss", "kd_loss", "nonfinite_steps"}
    assert all(k > 0 for k in history.history["kd_loss"])


def test_margin_model_trains_with_plain_fit_on_image_label_data(tmp_path):
    x, y = labelled_images(24, classes=3, seed=4)
    keras.utils.set_random_seed(0)
    model = MarginModel(tiny_backbone(embedding_size=8), CosMarginHead(3, scale=16.0, margin=0.1))
    model.compile(optimizer=TorchSGD(0.05, weight_decay=0.0, clip_norm=5.0))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(24, seed=1).batch(8)
    history = model.fit(ds, epochs=12, verbose=0).history
    assert set(history) == {"loss", "ce_loss", "nonfinite_steps"}
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    # Inference: the model is the backbone.
    np.testing.assert_allclose(np.asarray(model.predict(x, verbose=0)), np.asarray(model.backbone(x)), atol=1e-5)
    # The wrapper round-trips through .keras (backbone + head; a teacher is never saved).
    path = tmp_path / "margin.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.head.kernel), np.asarray(model.head.kernel))


def test_compile_rejects_a_loss_and_teacher_mismatch_raises():
    model = MarginModel(tiny_backbone(), ArcMarginHead(3))
    with pytest.raises(ValueError, match="the loss is built in"):
        model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TeacherError, match=r"embedding 6, student expects \[8, 8, 3\] / 4"):
        DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=tiny_backbone(embedding_size=6, name="t"))


def test_cosine_kd_term_matches_numpy_and_round_trips(keras_teacher):
    x, y = labelled_images(6)
    model = DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=keras_teacher, kd_weight=3.0,
                              kd_loss="cosine")
    _, terms, _ = model.compute_losses(x, y, training=False, teacher_embeddings=model._teacher_embeddings(x))
    s = np.asarray(model.backbone(x, training=False))
    t = np.asarray(keras_teacher(x, training=False))
    cos = np.sum(_l2n(s) * _l2n(t), axis=1)
    assert float(terms["kd_loss"]) == pytest.approx(3.0 * np.mean(1.0 - cos), rel=1e-5)
    # The MSE variant on the same pair is the scaled cosine distance (unit vectors): a cosine
    # implementation that forgot the normalisation or the "1 -" would break this.
    mse = DistillationModel(tiny_backbone(), ArcMarginHead(3), teacher=keras_teacher, kd_weight=3.0)
    _, mse_terms, _ = mse.compute_losses(x, y, training=False, teacher_embeddings=mse._teacher_embeddings(x))
    assert float(mse_terms["kd_loss"]) == pytest.approx(3.0 * np.mean(2 * (1 - cos)) / s.shape[1], rel=1e-5)
    config = model.get_config()
    assert config["kd_loss"] == "cosine" and config["kd_weight"] == 3.0
    with pytest.raises(ValueError, match="kd_loss must be one of"):
        DistillationModel(tiny_backbone(), ArcMarginHead(3), kd_loss="l1")


def test_cosine_kd_on_two_replicas_equals_one_device(keras_teacher):
    """The cosine term is a keras Loss, so its 1/replicas scaling is Keras' own: one SGD step on
    two logical CPUs moves the student exactly as one device does."""
    x, y = labelled_images(8)

    def one_step(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            # No BatchNorm in the student: its batch statistics are per replica by design.
            model = DistillationModel(tiny_backbone(batch_norm_layers=False), ArcMarginHead(3), teacher=keras_teacher,
                                      kd_weight=50.0, kd_loss="cosine")
            model.compile(optimizer=TorchSGD(0.1))
        model.fit(dataset(x, y, 8), epochs=1, verbose=0)
        return weight_values(model.backbone.weights)

    single = one_step(tf.distribute.get_strategy())
    mirrored = one_step(two_cpu_strategy())
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
