"""The architect's alpha gradient: first order, the virtual step, and second order against finite
differences of the unrolled validation loss (spec §2.5)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.search.architect import Architect
from tests.factory import labelled_images, tiny_search_network, weight_values


def _loss_fn():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _random_alphas(net, seed, scale=0.5):
    rng = np.random.default_rng(seed)
    for a in net.alphas:
        a.assign(rng.normal(scale=scale, size=a.shape).astype(a.dtype))


def _substituted(net, weights, alphas):
    """Trainable values in ``net.trainable_variables`` order with the given weights / alphas."""
    w_pos = {id(v): i for i, v in enumerate(net.network_weights)}
    a_pos = {id(v): i for i, v in enumerate(net.alphas)}
    return [alphas[a_pos[id(v)]] if id(v) in a_pos else weights[w_pos[id(v)]] for v in net.trainable_variables]


def _stateless_loss(net, loss_fn, weights, alphas, x, y):
    non_trainable = [tf.convert_to_tensor(v) for v in net.non_trainable_variables]
    logits, _ = net.stateless_call(_substituted(net, weights, alphas), non_trainable, x, training=True)
    return loss_fn(y, logits)


def test_first_order_equals_the_plain_validation_gradient():
    net = tiny_search_network()
    _random_alphas(net, 0)
    architect = Architect(net, _loss_fn(), second_order=False)
    trn, val = labelled_images(6, seed=1, size=16), labelled_images(6, seed=2, size=16)
    before = weight_values(net.variables)
    grads, val_loss = architect.alpha_gradients(trn, val, xi=0.1)
    with tf.GradientTape() as tape:
        loss = _loss_fn()(val[1], net(val[0], training=True))
    expected = tape.gradient(loss, net.alphas)
    assert float(val_loss) == pytest.approx(float(loss), rel=1e-6)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-5, atol=1e-8)
        assert np.abs(np.asarray(e)).max() > 1e-4
    # The architect is stateless: nothing moved, not even the BN statistics.
    for a, b in zip(before[: len(net.alphas)], weight_values(net.variables)[: len(net.alphas)]):
        np.testing.assert_array_equal(a, b)


def test_virtual_step_is_one_pytorch_sgd_step():
    net = tiny_search_network()
    architect = Architect(net, _loss_fn(), second_order=True, weight_momentum=0.9, weight_decay=3e-4)
    trn = labelled_images(6, seed=1, size=16)
    rng = np.random.default_rng(5)
    weights = [tf.convert_to_tensor(w) for w in net.network_weights]
    alphas = [tf.convert_to_tensor(a) for a in net.alphas]
    buffers = [tf.constant(rng.normal(size=w.shape).astype(np.float32)) for w in weights]
    virtual = architect.virtual_weights(weights, alphas, trn, 0.07, buffers)
    with tf.GradientTape() as tape:
        loss = _loss_fn()(trn[1], net(trn[0], training=True))
    grads = tape.gradient(loss, net.network_weights)
    for v, w, g, b in zip(virtual, weights, grads, buffers):
        expected = w.numpy() - 0.07 * (0.9 * b.numpy() + g.numpy() + 3e-4 * w.numpy())
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-5, atol=1e-6)


def _make_smooth(net):
    """PReLU slopes 1 (identity) and max pooling switched off: the network becomes a smooth
    function of weights and alphas. With kinks, the difference quotient of the DARTS
    Hessian-vector product picks up gradient jumps (PReLU, max-pool argmax) that autodiff and
    a finite difference in alpha do not see, so the two cannot be compared."""
    for layer in net._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(np.ones(layer.alpha.shape))
    for a in net.alphas:
        value = a.numpy()
        value[:, PRIMITIVES.index("max_pool_3x3")] = -40.0
        a.assign(value)


def test_second_order_matches_finite_differences_of_the_unrolled_loss(float64):
    net = tiny_search_network()
    assert net.alphas[0].dtype == "float64"
    _random_alphas(net, 0)
    _make_smooth(net)
    loss_fn = _loss_fn()
    xi, momentum, decay = 0.5, 0.9, 3e-4
    architect = Architect(net, loss_fn, second_order=True, weight_momentum=momentum, weight_decay=decay)
    trn = labelled_images(6, seed=1, size=16, dtype="float64")
    val = labelled_images(6, seed=2, size=16, dtype="float64")
    rng = np.random.default_rng(7)
    weights = [tf.convert_to_tensor(w) for w in net.network_weights]
    buffers = [tf.constant(rng.normal(scale=0.1, size=w.shape)) for w in weights]

    grads, _ = architect.alpha_gradients(trn, val, xi, buffers)
    first, _ = Architect(net, loss_fn, second_order=False).alpha_gradients(trn, val, xi)

    @tf.function
    def unrolled_val_loss(alphas):
        # L_val(w - xi * (momentum * buf + grad_w L_trn(w, alpha) + decay * w), alpha), written
        # directly on the network (not through the architect).
        with tf.GradientTape() as tape:
            tape.watch(weights)
            train_loss = _stateless_loss(net, loss_fn, weights, alphas, *trn)
        g = tape.gradient(train_loss, weights)
        virtual = [w - xi * (momentum * b + gw + decay * w) for w, b, gw in zip(weights, buffers, g)]
        return _stateless_loss(net, loss_fn, virtual, alphas, *val)

    # Directional derivatives along random directions in alpha space, by central differences.
    base = [tf.convert_to_tensor(a) for a in net.alphas]
    directions = [[tf.constant(rng.normal(size=a.shape)) for a in base] for _ in range(6)]
    h = 1e-5

    def along(direction, step):
        return float(unrolled_val_loss([a + step * d for a, d in zip(base, direction)]))

    numeric = np.array([(along(d, h) - along(d, -h)) / (2 * h) for d in directions])

    def project(grad_list):
        return np.array([sum(float(tf.reduce_sum(g * dk)) for g, dk in zip(grad_list, d)) for d in directions])

    analytic, first_order = project(grads), project(first)
    error = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    # The second-order term matters here (so the check has teeth) ...
    assert np.linalg.norm(first_order - numeric) / np.linalg.norm(numeric) > 0.3
    # ... and the DARTS finite-difference Hessian-vector product reproduces it.
    assert error < 1e-3, error


def test_architect_leaves_every_variable_untouched():
    """The full statelessness claim: after an alpha gradient (first and second order), every
    variable of the network -- weights, alphas and the BN moving statistics -- holds its value
    bit for bit."""
    net = tiny_search_network(seed=4)
    _random_alphas(net, 1)
    trn, val = labelled_images(6, seed=1, size=16), labelled_images(6, seed=2, size=16)
    moving = [i for i, v in enumerate(net.variables) if "moving_" in v.path]
    assert len(moving) > 20 and len(net.variables) > len(net.network_weights) + len(net.alphas)
    before = weight_values(net.variables)
    buffers = [tf.constant(np.full(w.shape, 0.5, np.float32)) for w in net.network_weights]
    for second_order in (False, True):
        architect = Architect(net, _loss_fn(), second_order=second_order, weight_momentum=0.9, weight_decay=3e-4)
        grads, _ = architect.alpha_gradients(trn, val, xi=0.1, momentum_buffers=buffers if second_order else None)
        assert all(np.abs(np.asarray(g)).max() > 0 for g in grads)
        after = weight_values(net.variables)
        assert len(after) == len(before)
        for variable, a, b in zip(net.variables, before, after):
            np.testing.assert_array_equal(a, b, err_msg=f"second_order={second_order}: {variable.path}")
    # The check can fail: a training-mode forward does move the BN statistics.
    net(val[0], training=True)
    after = weight_values(net.variables)
    assert any(not np.array_equal(before[i], after[i]) for i in moving)
