"""MixedOp: the weighted sum over all eight primitives, gradients through every one of them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.search.mixed_op import MixedOp
from tests import helpers

NONE = PRIMITIVES.index("none")


def _input(seed=0, shape=(2, 8, 8, 4)):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


def _softmax(a):
    e = np.exp(a - a.max())
    return e / e.sum()


@pytest.mark.parametrize("strides", [1, 2])
def test_output_is_the_weighted_sum_of_the_candidates(strides):
    keras.utils.set_random_seed(0)
    op = MixedOp(4, strides=strides)
    x = _input()
    w = _softmax(np.random.default_rng(1).normal(size=len(PRIMITIVES))).astype(np.float32)
    mixed = np.asarray(op(x, tf.constant(w), training=True))
    # Each candidate alone, in the same (training) mode: BN uses the batch statistics, so the
    # repeated calls give the same values.
    parts = [np.asarray(c(x, training=True)) for c in op.candidates]
    expected = sum(wi * p for wi, p in zip(w, parts))
    np.testing.assert_allclose(mixed, expected, rtol=1e-5, atol=1e-6)
    assert mixed.shape == (2, 8 // strides, 8 // strides, 4)
    assert [c.name for c in op.candidates] == list(PRIMITIVES)
    # All batch norms of the search are affine-free (spec §1.4).
    bns = [layer for c in op.candidates for layer in c._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 6 + (strides == 2) and not any(bn.center or bn.scale for bn in bns)


@pytest.mark.parametrize("strides", [1, 2])
def test_none_contributes_exactly_zero(strides):
    keras.utils.set_random_seed(0)
    op = MixedOp(4, strides=strides)
    x = _input()
    only_none = np.zeros(len(PRIMITIVES), np.float32)
    only_none[NONE] = 1.0
    assert not np.any(np.asarray(op(x, tf.constant(only_none), training=True)))
    # With most of the weight on 'none', the output is the other seven terms and nothing else.
    w = np.full(len(PRIMITIVES), 0.02, np.float32)
    w[NONE] = 1.0 - 0.02 * (len(PRIMITIVES) - 1)
    mixed = np.asarray(op(x, tf.constant(w), training=True))
    others = sum(0.02 * np.asarray(c(x, training=True)) for i, c in enumerate(op.candidates) if i != NONE)
    np.testing.assert_allclose(mixed, others, rtol=1e-5, atol=1e-7)
    assert np.abs(mixed).max() > 1e-3


@pytest.mark.parametrize("strides", [1, 2])
def test_gradients_reach_alpha_and_every_primitive(strides):
    keras.utils.set_random_seed(0)
    op = MixedOp(4, strides=strides)
    x = _input()
    op(x, tf.ones(len(PRIMITIVES)) / len(PRIMITIVES), training=True)
    alpha = tf.Variable(np.random.default_rng(2).normal(scale=0.1, size=len(PRIMITIVES)).astype(np.float32))
    target = tf.constant(np.random.default_rng(3).normal(size=(2, 8 // strides, 8 // strides, 4)).astype(np.float32))
    weights = op.trainable_weights
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(target * op(x, tf.nn.softmax(alpha), training=True))
    d_alpha, *d_weights = tape.gradient(loss, [alpha] + weights)

    # Analytic: L = sum_i w_i g_i with g_i = <target, op_i(x)> (independent of alpha), so
    # dL/dalpha_k = w_k (g_k - L).
    g = np.array([float(tf.reduce_sum(target * c(x, training=True))) for c in op.candidates])
    w = _softmax(alpha.numpy().astype(np.float64))
    np.testing.assert_allclose(d_alpha.numpy(), w * (g - np.dot(w, g)), rtol=1e-4, atol=1e-6)
    assert g[NONE] == 0.0 and np.all(d_alpha.numpy() != 0.0)

    # Every parameter of every candidate receives a gradient (skip_connect has parameters only
    # as a stride-2 FactorizedReduce; the pools and 'none' have none besides BN statistics).
    owners = {}
    for c in op.candidates:
        for v in c.trainable_weights:
            owners[id(v)] = c.name
    with_params = {c.name for c in op.candidates if c.trainable_weights}
    expected = {"dw_conv_3x3", "dw_conv_5x5", "dw_conv_7x7", "dw_conv_1x1"} | ({"skip_connect"} if strides == 2 else set())
    assert with_params == expected
    for v, dv in zip(weights, d_weights):
        assert dv is not None and float(tf.reduce_max(tf.abs(dv))) > 0.0, f"no gradient for {owners[id(v)]}: {v.path}"


def test_config_round_trip_and_bad_arguments():
    helpers.assert_config_round_trip(MixedOp(4, strides=2, name="edge"))
    with pytest.raises(ValueError, match="strides must be 1 or 2, received 3"):
        MixedOp(4, strides=3)
    with pytest.raises(ValueError, match="filters must be a positive int, received 0"):
        MixedOp(0)
    with pytest.raises(ValueError, match="expected 4 input channels"):
        MixedOp(4).build((1, 8, 8, 3))
