"""The second-order alpha gradient against the PyTorch reference of the same step
(``tests/torch_search_reference.py``), and its float32 accuracy against float64 (issue #15 item 4)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.search.architect import Architect
from pocketnet_tf.search.search_network import SearchNetwork
from tests.factory import labelled_images

torch = pytest.importorskip("torch")
from tests import torch_search_reference as ref  # noqa: E402

#: Small enough for a unit test, deep enough for every cell kind: 4 cells (reductions at 1, 2, 3),
#: 2 nodes (5 mixed edges per cell), 32x32 input.
CONFIG = dict(num_classes=5, channels=2, num_cells=4, num_nodes=2, input_size=32, head_width=16, gdc_groups=4,
              embedding_size=8)
XI = 0.1


def _keras_network(dtype):
    old = keras.config.floatx()
    keras.config.set_floatx(dtype)
    try:
        keras.utils.set_random_seed(0)
        net = SearchNetwork(**CONFIG, seed=0)
    finally:
        keras.config.set_floatx(old)
    rng = np.random.default_rng(3)
    for a in net.alphas:  # away from uniform, so every alpha gradient differs
        a.assign(rng.normal(scale=0.5, size=a.shape).astype(dtype))
    return net


def _batches():
    return tuple(labelled_images(4, seed=seed, size=32, classes=5, dtype="float64") for seed in (1, 2))


def _ours(net, dtype, trn, val, compiled=None):
    """Eagerly (every edge run directly), or ``compiled`` in a ``tf.function`` with the given
    edge execution ("recompute": shared non-inlined edge functions; "inline")."""
    def cast(b):
        return tf.constant(b[0].astype(dtype)), tf.constant(b[1])

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    architect = Architect(net, loss, second_order=True)
    if compiled is None:
        grads, _ = architect.alpha_gradients(cast(trn), cast(val), XI)
    else:
        net.set_edge_execution(compiled)
        grads, _ = tf.function(lambda t, v: architect.alpha_gradients(t, v, XI))(cast(trn), cast(val))
    return np.concatenate([np.ravel(np.asarray(g, np.float64)) for g in grads])


def _torch(keras_net, dtype, trn, val):
    net = ref.load_keras_weights(ref.SearchCNN(**CONFIG), keras_net, dtype)

    def cast(b):
        return torch.from_numpy(b[0].transpose(0, 3, 1, 2).copy()).to(dtype), torch.from_numpy(b[1]).long()

    ref.Architect(net).unrolled_backward(*cast(trn), *cast(val), XI, None)
    return np.concatenate([a.grad.double().numpy().ravel() for a in net.alphas()])


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def gradients():
    trn, val = _batches()
    net64, net32 = _keras_network("float64"), _keras_network("float32")
    for v32, v64 in zip(net32.variables, net64.variables):  # the same weights in both precisions
        v32.assign(np.asarray(v64).astype(np.float32))
    return {
        "ours64": _ours(net64, "float64", trn, val), "ours32": _ours(net32, "float32", trn, val),
        "recompute64": _ours(net64, "float64", trn, val, compiled="recompute"),
        "inline64": _ours(net64, "float64", trn, val, compiled="inline"),
        "torch64": _torch(net64, torch.float64, trn, val), "torch32": _torch(net64, torch.float32, trn, val),
    }


def test_second_order_alpha_gradient_equals_the_pytorch_reference_in_float64(gradients):
    ours, reference = gradients["ours64"], gradients["torch64"]
    assert np.abs(reference).max() > 1e-4
    # Same network, weights, data and formula: they agree to 6-7 digits (measured 3.4e-7: the
    # finite difference divides round-off of the two gradients by 2 eps; a wrong op, weight
    # layout or step formula gives errors of order 1e-2 and more).
    assert _relative(ours, reference) < 1e-5


@pytest.mark.parametrize("mode", ["recompute", "inline"])
def test_compiled_step_alpha_gradient_equals_the_pytorch_reference_in_float64(gradients, mode):
    # The compiled step: shared edge functions that recompute each edge in the backward pass
    # (and skip the weight gradients in the w+/w- passes), or every edge inline.
    assert _relative(gradients[f"{mode}64"], gradients["torch64"]) < 1e-5
    assert _relative(gradients[f"{mode}64"], gradients["ours64"]) < 1e-9


def test_float32_alpha_gradient_is_as_accurate_as_pytorch(gradients):
    ours = _relative(gradients["ours32"], gradients["ours64"])
    theirs = _relative(gradients["torch32"], gradients["torch64"])
    print(f"float32 vs float64 second-order alpha gradient: ours {ours:.2e}, PyTorch {theirs:.2e}")
    # PyTorch's float32 error is the yardstick (issue #15: 0.86 % on a C=2, 4-cell supernet); ours
    # must not exceed it by more than round-off noise, and stays far below one percent.
    assert ours <= max(3.0 * theirs, 1e-4), (ours, theirs)
    assert ours < 1e-3
