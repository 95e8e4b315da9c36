"""The training fast paths of BatchNorm and PReLU against Keras' own layers and numpy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers import common


def _train_call(layer, x, upstream):
    """Output, input gradient, trainable-variable gradients of one training-mode call."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * upstream)
    dx, dvars = tape.gradient(loss, [x, layer.trainable_variables])
    return y.numpy(), dx.numpy(), [g.numpy() for g in dvars]


@pytest.mark.parametrize("shape,shared_axes", [((4, 6, 5, 8), [1, 2]), ((4, 6, 5, 8), None), ((6, 8), None)])
def test_prelu_training_path_equals_keras_prelu(shape, shared_axes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    x[0, 0] = 0.0  # the kink
    upstream = rng.normal(size=shape).astype(np.float32)
    ours = common.PReLU(shared_axes=shared_axes)
    ref = keras.layers.PReLU(shared_axes=shared_axes)
    ours.build(shape)
    ref.build(shape)
    alpha = rng.uniform(-0.5, 1.5, tuple(ours.alpha.shape)).astype(np.float32)
    ours.alpha.assign(alpha)
    ref.alpha.assign(alpha)
    y, dx, (dalpha,) = _train_call(ours, x, upstream)
    y_ref, dx_ref, (dalpha_ref,) = _train_call(ref, x, upstream)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(ours(x).numpy(), ref(x).numpy())  # inference path is Keras' own
    # d/dx at exactly 0: PyTorch (and we) take the negative side's slope, Keras takes 0.
    nonzero = x != 0
    np.testing.assert_array_equal(dx[nonzero], dx_ref[nonzero])
    np.testing.assert_allclose(dx[~nonzero], (np.broadcast_to(alpha, shape) * upstream)[~nonzero], rtol=1e-6)
    # d/dalpha = sum over the shared axes of upstream * min(x, 0)
    axes = tuple(i for i in range(len(shape)) if i == 0 or (shared_axes and i in shared_axes))
    expected = (upstream * np.minimum(x, 0)).sum(axis=axes).reshape(alpha.shape)
    np.testing.assert_allclose(dalpha, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dalpha, dalpha_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_training_path(affine):
    rng = np.random.default_rng(1)
    shape = (6, 5, 4, 8)
    x = rng.normal(2.0, 3.0, shape).astype(np.float32)
    upstream = rng.normal(size=shape).astype(np.float32)
    ours = common.batch_norm("bn", affine=affine)
    ref = keras.layers.BatchNormalization(epsilon=common.BN_EPSILON, momentum=common.BN_MOMENTUM, center=affine,
                                          scale=affine)
    ours.build(shape)
    ref.build(shape)
    if affine:
        ours.gamma.assign(rng.uniform(0.5, 1.5, 8))
        ours.beta.assign(rng.normal(size=8))
    ours.moving_mean.assign(rng.normal(size=8))
    ours.moving_variance.assign(rng.uniform(0.5, 2.0, 8))
    ref.set_weights(ours.get_weights())
    before_mean, before_var = ours.moving_mean.numpy(), ours.moving_variance.numpy()
    y, dx, dvars = _train_call(ours, x, upstream)
    y_ref, dx_ref, dvars_ref = _train_call(ref, x, upstream)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
    for g, g_ref in zip(dvars, dvars_ref):
        np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-4)
    # Normalised with the biased batch variance ...
    flat = x.reshape(-1, 8).astype(np.float64)
    gamma = ours.gamma.numpy() if affine else 1.0
    beta = ours.beta.numpy() if affine else 0.0
    expected = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + common.BN_EPSILON) * gamma + beta
    np.testing.assert_allclose(y.reshape(-1, 8), expected, rtol=1e-4, atol=1e-4)
    # ... while the running variance takes the unbiased one, as torch.nn.BatchNorm2d does.
    np.testing.assert_allclose(ours.moving_mean.numpy(), 0.9 * before_mean + 0.1 * flat.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.moving_variance.numpy(), 0.9 * before_var + 0.1 * flat.var(0, ddof=1), rtol=1e-5)
    # Inference: the parent's code, equal to Keras given the same statistics.
    ref.set_weights(ours.get_weights())
    np.testing.assert_array_equal(ours(x, training=False).numpy(), ref(x, training=False).numpy())


def test_batch_norm_frozen_layer_uses_moving_statistics():
    x = np.random.default_rng(2).normal(size=(4, 3, 3, 8)).astype(np.float32)
    bn = common.batch_norm("bn")
    bn.build(x.shape)
    bn.trainable = False
    np.testing.assert_array_equal(bn(x, training=True).numpy(), bn(x, training=False).numpy())


def test_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((6, 6, 4))
    x = common.batch_norm("bn")(inputs)
    outputs = common.prelu("prelu")(x)
    model = keras.Model(inputs, outputs)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.get_layer("bn")) is common.BatchNormalization
    assert type(loaded.get_layer("prelu")) is common.PReLU
    x = np.random.default_rng(3).normal(size=(2, 6, 6, 4)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


def test_pocketnet_files_written_with_plain_keras_layers_still_load(tmp_path, monkeypatch):
    """A PocketNet saved when the factories made keras.layers.BatchNormalization / PReLU (earlier
    versions of the package) loads into today's classes with every variable in place."""
    from pocketnet_tf import models
    from tests.factory import randomize_weights

    with monkeypatch.context() as m:
        m.setattr(common, "BatchNormalization", keras.layers.BatchNormalization)
        m.setattr(common, "PReLU", keras.layers.PReLU)
        old = models.build("PocketNetS-128", input_size=32, channels=2, num_cells=3)
    assert not any(isinstance(layer, (common.BatchNormalization, common.PReLU)) for layer in old._flatten_layers())
    randomize_weights(old, seed=5)
    for layer in old._flatten_layers():
        if isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(np.random.default_rng(6).uniform(-0.3, 0.8, tuple(layer.alpha.shape)))
    path = tmp_path / "old.keras"
    old.save(path)
    loaded = keras.models.load_model(path)
    assert any(type(layer) is common.BatchNormalization for layer in loaded._flatten_layers())
    x = np.random.default_rng(7).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(loaded(x, training=False).numpy(), old(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "make, trainable, non_trainable",
    [(lambda: common.batch_norm("bn"), 2, 2), (lambda: common.batch_norm("bn", affine=False), 0, 2),
     (lambda: common.prelu("prelu"), 1, 0), (lambda: common.conv1x1(3, "conv"), 1, 0),
     (lambda: common.depthwise(3, "dw", padding="same"), 1, 0)],
    ids=["batch_norm", "batch_norm_noaffine", "prelu", "conv1x1", "depthwise"],
)
def test_layer_harness(make, trainable, non_trainable, tmp_path):
    from tests import factory, helpers

    x = factory.random_images(2, 5, channels=4)
    out = helpers.run_layer_test(make, x, tmp_path, expected_num_trainable_weights=trainable,
                                 expected_num_non_trainable_weights=non_trainable)
    assert out.shape[:3] == (2, 5, 5)
