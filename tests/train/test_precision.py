"""Mixed precision (``--precision``): one step against float32, fp16 loss scaling, float32 saving.

Tolerance of the step comparison: bfloat16 keeps 8 significant bits (unit roundoff u = 2^-9 ≈
2e-3). The tiny net rounds its activations at ~6 ops forward and again backward; independent
roundings add like a random walk, and a training-mode BN makes the gradient of the conv kernel
before it a small difference of large terms (the loss is invariant to the kernel's scale, so its
gradient is a projection), which amplifies them a few times: a few tens of u, 5e-2. Measured here:
bfloat16 <= 0.9 % on every variable; float16 0.05-0.5 % except that conv kernel, 3-4.6 % (float16
is 8x finer than bfloat16, so this is an amplification not yet explained; TF's float16 conv and
FusedBatchNorm CPU kernels alone are as exact as their rounding). The same 5e-2 holds for both and
still catches real bugs: a head or loss in 16 bits moves an ``s = 64`` logit by 0.25, a lost loss
scale or an unscaled gradient is off by 2^k, a skipped BN statistic by far more.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.distiller import DistillationModel, MarginModel
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.precision import float32_copy, optimizer_options, precision_scope
from pocketnet_tf.train.teachers import export_savedmodel
from tests.factory import dataset, labelled_images, tiny_backbone
from tests.helpers import two_cpu_strategy

TOLERANCE = {"mixed_bfloat16": 5e-2, "mixed_float16": 5e-2}


def _model(precision, teacher=None, batch_norm_layers=True, **optimizer_kwargs):
    keras.utils.set_random_seed(0)
    with precision_scope(precision):
        backbone = tiny_backbone(batch_norm_layers=batch_norm_layers)
        model = DistillationModel(backbone, ArcMarginHead(3), teacher=teacher, kd_weight=10.0)
    optimizer_kwargs = {**optimizer_options(precision), **optimizer_kwargs}
    model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0, **optimizer_kwargs))
    model.optimizer.build(model.trainable_variables)
    return model


def _loss_and_gradients(model, x, y):
    """The train step's loss and (unscaled) gradients, as ``train_step`` computes them."""
    teacher_embeddings = model._teacher_embeddings(x)
    with tf.GradientTape() as tape:
        total, terms, _ = model.compute_losses(x, y, training=True, teacher_embeddings=teacher_embeddings)
        scaled = model.optimizer.scale_loss(total)
    gradients = tape.gradient(scaled, model.trainable_variables)
    scale = float(model.optimizer.loss_scale.numpy()) if model.optimizer.dynamic_loss_scale else 1.0
    return terms, [np.asarray(g, np.float64) / scale for g in gradients]


@pytest.fixture(scope="module")
def bf16_teacher(tmp_path_factory):
    """A teacher SavedModel exported from a mixed_bfloat16 model: it runs (and answers) in bfloat16."""
    with precision_scope("mixed_bfloat16"):
        teacher = tiny_backbone(seed=7, name="teacher")
    path = export_savedmodel(teacher, tmp_path_factory.mktemp("teacher") / "saved")
    keras.backend.clear_session(free_memory=False)
    return str(path)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_one_step_matches_float32(precision, bf16_teacher):
    x, y = labelled_images(n=8)
    reference = _model("float32", teacher=bf16_teacher)
    # 2^15 (the default start) overflows this loss in fp16 and is halved by the first steps of a
    # run (see the overflow test); start where a run settles.
    model = _model(precision, teacher=bf16_teacher, initial_loss_scale=2.0 ** 8)
    model.set_weights(reference.get_weights())
    assert model.backbone.output.dtype == precision[len("mixed_"):]
    assert all(v.dtype == "float32" for v in model.weights)  # variables (so checkpoints) stay float32

    ref_terms, ref_grads = _loss_and_gradients(reference, x, y)
    terms, grads = _loss_and_gradients(model, x, y)
    for name in ("ce_loss", "kd_loss"):
        assert terms[name].dtype == tf.float32, name
        assert float(terms[name]) == pytest.approx(float(ref_terms[name]), rel=TOLERANCE[precision]), name
    assert float(ref_terms["kd_loss"]) > 0.1  # the KD term is really there
    # Every gradient: relative error of its norm-wise difference.
    for variable, g, r in zip(model.trainable_variables, grads, ref_grads):
        assert np.all(np.isfinite(g)), variable.path
        error = np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-12)
        assert error < TOLERANCE[precision], (variable.path, error)
    # The head is float32 whatever the policy: its logits equal the reference's exactly for the same input.
    embeddings = reference.backbone(x, training=False)
    np.testing.assert_array_equal(np.asarray(model.head(embeddings, y)), np.asarray(reference.head(embeddings, y)))


def test_float16_overflow_skips_the_step_and_halves_the_scale():
    x, y = labelled_images(n=8)
    # A loss scale this large turns the fp16 backward into inf: the step must change nothing.
    model = _model("mixed_float16", initial_loss_scale=1e30)
    before = [np.array(w) for w in model.trainable_variables]
    history = model.fit(dataset(x, y, 8), epochs=1, verbose=0).history
    assert history["nonfinite_steps"] == [1.0]
    assert history["loss_scale"] == [pytest.approx(5e29, rel=1e-6)]
    assert int(model.optimizer.iterations.numpy()) == 1  # the data position still advanced
    for w, b in zip(model.trainable_variables, before):
        np.testing.assert_array_equal(np.array(w), b, err_msg=w.path)
    assert all(float(np.abs(np.array(m)).max()) == 0.0 for m in model.optimizer.momentums)
    # With a workable scale the next steps train.
    model.optimizer.loss_scale.assign(2.0 ** 8)
    history = model.fit(dataset(x, y, 8), epochs=1, verbose=0).history
    assert history["nonfinite_steps"] == [0.0]
    assert max(float(np.abs(np.array(w) - b).max()) for w, b in zip(model.trainable_variables, before)) > 1e-3


def test_inf_gradient_is_skipped_and_the_scale_grows_after_the_interval():
    var = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt = TorchSGD(0.5, momentum=0.9, weight_decay=0.0, dynamic_loss_scale=True, initial_loss_scale=4.0,
                   growth_interval=2)
    opt.build([var])
    opt.apply([tf.constant([np.inf, 1.0])], [var])
    np.testing.assert_array_equal(var.numpy(), [1.0, -2.0])
    np.testing.assert_array_equal(opt.momentums[0].numpy(), [0.0, 0.0])
    assert float(opt.loss_scale.numpy()) == 2.0 and int(opt.iterations.numpy()) == 1
    opt.apply([tf.constant([2.0, 4.0])], [var])  # scaled by 2: the true gradient is [1, 2]
    np.testing.assert_allclose(var.numpy(), [0.5, -3.0])
    assert float(opt.loss_scale.numpy()) == 2.0
    opt.apply([tf.constant([0.0, 0.0])], [var])  # second finite step in a row: the scale doubles
    assert float(opt.loss_scale.numpy()) == 4.0 and int(opt.good_steps.numpy()) == 0
    opt.apply([tf.constant([np.nan, 0.0])], [var])
    assert float(opt.loss_scale.numpy()) == 2.0


def test_clipping_after_unscaling_equals_the_float32_clip():
    rng = np.random.default_rng(0)
    init = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)]
    grads = [10 * rng.normal(size=(3, 4)).astype(np.float32), 10 * rng.normal(size=(4,)).astype(np.float32)]
    assert float(tf.linalg.global_norm(grads)) > 10.0  # the clip (norm 1) is active
    results = []
    for dynamic in (False, True):
        variables = [keras.Variable(v) for v in init]
        opt = TorchSGD(0.1, clip_norm=1.0, dynamic_loss_scale=dynamic, initial_loss_scale=2.0 ** 10)
        opt.build(variables)
        opt.set_clip_variables(variables)
        scale = float(opt.loss_scale.numpy()) if dynamic else 1.0
        for _ in range(2):
            opt.apply([tf.constant(g * scale) for g in grads], variables)
        results.append([v.numpy() for v in variables])
    for scaled, plain in zip(*results):
        np.testing.assert_allclose(scaled, plain, rtol=1e-6, atol=1e-7)


def test_float16_two_replicas_equal_one_device():
    """Loss scaling under MirroredStrategy: the overflow decision is taken on the summed gradient
    (both replicas skip together), the clip sees the unscaled sum, and the result equals one device."""
    x, y = labelled_images(n=16)
    kwargs = {"batch_norm_layers": False, "initial_loss_scale": 2.0 ** 8, "growth_interval": 1}
    single = _model("mixed_float16", **kwargs)
    init = single.get_weights()
    single_hist = single.fit(dataset(x, y, 8), epochs=2, verbose=0).history
    strategy = two_cpu_strategy()
    with strategy.scope():
        mirrored = _model("mixed_float16", **kwargs)
    mirrored.set_weights(init)
    mirrored_hist = mirrored.fit(dataset(x, y, 8), epochs=2, verbose=0).history
    assert mirrored_hist["loss_scale"] == single_hist["loss_scale"]
    assert mirrored_hist["nonfinite_steps"] == single_hist["nonfinite_steps"] == [0.0, 0.0]
    assert single_hist["loss_scale"][-1] == 2.0 ** 12  # grew once per finite step (growth_interval=1)
    # fp16 activations of a 4-image half batch vs an 8-image batch round alike: only the order of
    # the final sums differs.
    for a, b in zip(mirrored.weights, single.weights):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=2e-3, atol=2e-4, err_msg=a.path)


def test_float32_copy_saves_a_float32_model(tmp_path):
    x, _ = labelled_images(n=4)
    with precision_scope("mixed_bfloat16"):
        backbone = tiny_backbone()
    copy = float32_copy(backbone)
    assert {layer.dtype_policy.name for layer in copy._flatten_layers()} == {"float32"}
    path = tmp_path / "student.keras"
    copy.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.output.dtype == "float32"
    out = np.asarray(loaded(x, training=False))
    np.testing.assert_array_equal(out, np.asarray(copy(x, training=False)))
    # Same weights: the bfloat16 original agrees to bfloat16 resolution.
    np.testing.assert_allclose(np.asarray(backbone(x, training=False), np.float32), out, rtol=3e-2, atol=3e-2)
    assert float32_copy(copy) is copy


def test_margin_model_reports_a_nan_step_in_float32():
    x, y = labelled_images(n=8)
    keras.utils.set_random_seed(0)
    model = MarginModel(tiny_backbone(), ArcMarginHead(3))
    model.compile(optimizer=TorchSGD(0.1))
    x = x.copy()
    x[0, 0, 0, 0] = np.nan
    history = model.fit(dataset(x, y, 8), epochs=1, verbose=0).history
    assert history["nonfinite_steps"] == [1.0]
    assert "loss_scale" not in history
