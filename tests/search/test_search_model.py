"""SearchModel's bi-level step: which variables each half touches, and the full step against a
reference computed from the definitions (textbook DARTS and the original's ordering)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.factory import compiled_search_model, labelled_images, tiny_search_network, weight_values

LR, ALPHA_LR, CLIP, WD, ALPHA_WD = 0.05, 0.01, 0.05, 3e-4, 1e-3


def _grads(net, x, y, alphas=None):
    """(loss, grad wrt network weights, grad wrt alphas) of the training-mode loss, optionally at
    substituted alpha values (stateless)."""
    import keras

    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    weights = [tf.convert_to_tensor(w) for w in net.network_weights]
    alphas = [tf.convert_to_tensor(a) for a in (net.alphas if alphas is None else alphas)]
    a_pos = {id(v): i for i, v in enumerate(net.alphas)}
    w_pos = {id(v): i for i, v in enumerate(net.network_weights)}
    with tf.GradientTape() as tape:
        tape.watch(weights + alphas)
        trainable = [alphas[a_pos[id(v)]] if id(v) in a_pos else weights[w_pos[id(v)]] for v in net.trainable_variables]
        logits, _ = net.stateless_call(trainable, [tf.convert_to_tensor(v) for v in net.non_trainable_variables],
                                       x, training=True)
        loss = loss_fn(y, logits)
    g = tape.gradient(loss, weights + alphas)
    return float(loss), [t.numpy() for t in g[: len(weights)]], [t.numpy() for t in g[len(weights):]]


def _adam_first_step(alpha, grad):
    d = grad + ALPHA_WD * alpha
    return alpha - ALPHA_LR * d / (np.abs(d) + 1e-8)  # m_hat = d, v_hat = d^2 at t = 1


def _sgd_first_step(weights, grads):
    norm = np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads))
    scale = CLIP / max(norm, CLIP)
    assert scale < 0.5, "clipping should be active in these tests"
    return [w - LR * (scale * g + WD * w) for w, g in zip(weights, grads)]


def _model(**kwargs):
    net = tiny_search_network()
    model = compiled_search_model(net, lr=LR, clip_norm=CLIP, weight_decay=WD, alpha_lr=ALPHA_LR,
                                  alpha_weight_decay=ALPHA_WD, **kwargs)
    return net, model


@pytest.mark.parametrize("second_order", [True, False])
def test_alpha_step_touches_only_alphas_and_weight_step_only_weights(second_order):
    net, model = _model(second_order=second_order)
    trn, val = labelled_images(6, seed=1, size=16), labelled_images(6, seed=2, size=16)
    model.weight_step(trn)  # non-zero momentum buffers for the virtual step
    others = [v for v in net.variables if id(v) not in {id(a) for a in net.alphas}]  # weights + BN statistics
    before_alpha, before_others = weight_values(net.alphas), weight_values(others)
    model.alpha_step(trn, val)
    for a, b in zip(before_others, weight_values(others)):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(before_alpha, weight_values(net.alphas)))

    before_alpha, before_weights = weight_values(net.alphas), weight_values(net.network_weights)
    model.weight_step(trn)
    for a, b in zip(before_alpha, weight_values(net.alphas)):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(before_weights, weight_values(net.network_weights))]
    assert all(changed), f"{changed.count(False)} weight tensors did not move"


def test_every_network_weight_gets_a_training_gradient():
    net = tiny_search_network()
    _, grads, alpha_grads = _grads(net, *labelled_images(6, seed=1, size=16))
    for w, g in zip(net.network_weights, grads):
        assert np.abs(g).max() > 0, w.path
    assert all(np.abs(g).max() > 0 for g in alpha_grads)


def test_textbook_step_updates_alpha_first_then_weights_at_the_new_alpha():
    net, model = _model(second_order=False)
    trn, val = labelled_images(6, seed=1, size=16), labelled_images(6, seed=2, size=16)
    w0, a0 = weight_values(net.network_weights), weight_values(net.alphas)
    _, _, d_alpha = _grads(net, *val)
    a1 = [_adam_first_step(a, g) for a, g in zip(a0, d_alpha)]
    loss, g_w, _ = _grads(net, *trn, alphas=[tf.constant(a) for a in a1])
    w1 = _sgd_first_step(w0, g_w)

    logs = model.train_step((trn, val))
    for got, want in zip(weight_values(net.alphas), a1):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    for got, want in zip(weight_values(net.network_weights), w1):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert float(logs["loss"]) == pytest.approx(loss, rel=1e-5)
    assert set(logs) == {"loss", "accuracy", "alpha_loss"}


def test_original_ordering_steps_weights_at_the_old_alpha_and_adds_the_train_gradient():
    net, model = _model(second_order=False, original=True)
    trn, val = labelled_images(6, seed=1, size=16), labelled_images(6, seed=2, size=16)
    w0, a0 = weight_values(net.network_weights), weight_values(net.alphas)
    _, _, d_val = _grads(net, *val)
    _, g_w, d_trn = _grads(net, *trn)
    a1 = [_adam_first_step(a, gv + gt) for a, gv, gt in zip(a0, d_val, d_trn)]
    w1 = _sgd_first_step(w0, g_w)

    model.train_step((trn, val))
    for got, want in zip(weight_values(net.alphas), a1):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    for got, want in zip(weight_values(net.network_weights), w1):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("original", [False, True])
def test_second_order_step_uses_the_current_rate_and_momentum_buffers(original):
    net, model = _model(second_order=True, original=original)
    trn, val = labelled_images(6, seed=1, size=16), labelled_images(6, seed=2, size=16)
    model.weight_step(labelled_images(6, seed=3, size=16))  # buffers != 0
    model.optimizer.learning_rate = 0.03
    buffers = [tf.convert_to_tensor(b) for b in model._momentum_buffers()]
    assert all(float(tf.reduce_max(tf.abs(b))) > 0 for b in buffers)
    grads, _ = model.architect.alpha_gradients(trn, val, 0.03, buffers)
    if original:
        _, _, d_trn = _grads(net, *trn)
        grads = [g + t for g, t in zip(grads, d_trn)]
    a0 = weight_values(net.alphas)
    # Adam at t = 2 after one step with zero gradient history on alpha: alpha untouched so far,
    # so this is the optimiser's first alpha step (t = 1).
    want = [_adam_first_step(a, np.asarray(g)) for a, g in zip(a0, grads)]
    model.train_step((trn, val))
    for got, w in zip(weight_values(net.alphas), want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=2e-7)
    # With xi = 0 (and no buffers) the second-order rule is the first-order one; here it is not.
    first, _ = model.architect.alpha_gradients(trn, val, 0.0, [None] * len(buffers))
    assert max(float(np.abs(np.asarray(g) - np.asarray(f)).max()) for g, f in zip(grads, first)) > 1e-4


def test_compile_requires_the_pytorch_sgd():
    import keras

    net = tiny_search_network()
    from pocketnet_tf.search.search_model import SearchModel

    with pytest.raises(ValueError, match="weight_optimizer must be a TorchSGD"):
        SearchModel(net).compile(weight_optimizer=keras.optimizers.SGD(0.1), alpha_optimizer=keras.optimizers.Adam())
    with pytest.raises(RuntimeError, match="call compile"):
        SearchModel(net).alpha_step(labelled_images(2, seed=0, size=16), labelled_images(2, seed=1, size=16))


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_weight_step_updates_the_batch_norm_statistics_as_a_training_forward_pass(compiled):
    # The weight step runs the architect's stateless function and assigns the statistics it
    # returns: every one must move, each to the value a training forward pass gives it.
    net, model = _model(second_order=True)
    x, y = labelled_images(6, seed=1, size=16)
    before = weight_values(net.non_trainable_variables)
    _, want = net.stateless_call([tf.convert_to_tensor(v) for v in net.trainable_variables],
                                 [tf.convert_to_tensor(v) for v in net.non_trainable_variables], x, training=True)
    step = tf.function(model.weight_step) if compiled else model.weight_step
    step((x, y))
    got = weight_values(net.non_trainable_variables)
    for variable, b, g, w in zip(net.non_trainable_variables, before, got, want):
        assert not np.array_equal(b, g), variable.path
        np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-6, err_msg=variable.path)
