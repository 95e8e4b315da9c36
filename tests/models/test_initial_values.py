"""Initial values of every initialiser the original specifies (spec §1.2, §2.2-2.3, §3.2, §6.6-6.7).

Each kind of weight is pooled over the whole (tiny) network and divided by the bound the spec
gives it, so a changed initialiser (Keras' defaults: PReLU slope 0, Glorot kernels, a depthwise
fan-in that counts channels) moves a pooled statistic far outside the tolerance.
"""

import math

import keras
import numpy as np

from pocketnet_tf import models
from pocketnet_tf.layers.gdc import GroupedGlobalConv
from pocketnet_tf.layers.margin import ArcMarginHead
from tests.factory import tiny_search_network

UNIFORM_STD = 1 / math.sqrt(3)  # std of U(-1, 1)


def _layers(model):
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)]


def _assert_uniform_in_bound(scaled: np.ndarray, what: str):
    """``scaled`` = weights / bound: inside [-1, 1] and spread as U(-1, 1) (std 0.577)."""
    assert scaled.size > 2000, f"{what}: too few values ({scaled.size}) for a pooled statistic"
    assert np.abs(scaled).max() <= 1.0 + 1e-6, f"{what}: a value beyond the bound"
    assert abs(scaled.std() - UNIFORM_STD) < 0.03 * UNIFORM_STD, f"{what}: std {scaled.std():.4f} of weights/bound"
    assert abs(scaled.mean()) < 0.05, f"{what}: mean {scaled.mean():.4f}"


def _assert_prelu_and_batch_norm(model):
    prelus = [layer for layer in _layers(model) if isinstance(layer, keras.layers.PReLU)]
    bns = [layer for layer in _layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert prelus and bns
    for layer in prelus:  # PyTorch's PReLU default slope (Keras' default is 0)
        np.testing.assert_array_equal(np.asarray(layer.alpha), 0.25, err_msg=layer.name)
    for layer in bns:  # weight 1, bias 0, running mean 0, running var 1; eps 1e-5, momentum 0.1 (torch)
        assert (layer.epsilon, layer.momentum) == (1e-5, 0.9), layer.name
        np.testing.assert_array_equal(np.asarray(layer.moving_mean), 0.0, err_msg=layer.name)
        np.testing.assert_array_equal(np.asarray(layer.moving_variance), 1.0, err_msg=layer.name)
        if layer.scale:
            np.testing.assert_array_equal(np.asarray(layer.gamma), 1.0, err_msg=layer.name)
        if layer.center:
            np.testing.assert_array_equal(np.asarray(layer.beta), 0.0, err_msg=layer.name)


def test_pocketnet_init_params():
    """Derived net (``_init_params``): every conv kaiming-uniform U(+-sqrt(6 / fan_in)) with
    fan_in = (C_in / groups) * k * k, so k * k for depthwise kernels; BN 1/0; PReLU 0.25."""
    keras.utils.set_random_seed(0)
    model = models.build("PocketNetS-128", input_size=32, channels=4, num_cells=3, embedding_size=16)
    _assert_prelu_and_batch_norm(model)
    dense, depthwise = [], []
    for layer in _layers(model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel.shape[:2]
            depthwise.append(np.asarray(layer.kernel).ravel() / math.sqrt(6 / (kh * kw)))
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw, c_in, _ = layer.kernel.shape
            dense.append(np.asarray(layer.kernel).ravel() / math.sqrt(6 / (kh * kw * c_in)))
    _assert_uniform_in_bound(np.concatenate(dense), "conv kernels")
    _assert_uniform_in_bound(np.concatenate(depthwise), "depthwise kernels")


def test_search_network_pytorch_defaults_and_alpha():
    """Search net: PyTorch's default init, U(+-1/sqrt(fan_in)) for every conv/linear kernel and the
    classifier bias; alphas 1e-3 * N(0, 1); BN 1/0 (affine-free in the mixed ops); PReLU 0.25."""
    net = tiny_search_network(seed=3, num_classes=400)
    _assert_prelu_and_batch_norm(net)
    scaled = []
    for layer in _layers(net):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in = np.prod(layer.kernel.shape[:2])
        elif isinstance(layer, (keras.layers.Conv2D, GroupedGlobalConv)):
            fan_in = np.prod(layer.kernel.shape[:3])
        elif isinstance(layer, keras.layers.Dense):
            fan_in = layer.kernel.shape[0]
            scaled.append(np.asarray(layer.bias).ravel() * math.sqrt(fan_in))
        else:
            continue
        scaled.append(np.asarray(layer.kernel).ravel() * math.sqrt(fan_in))
    _assert_uniform_in_bound(np.concatenate(scaled), "conv/linear weights")
    alphas = np.concatenate([np.asarray(a).ravel() for a in net.alphas])
    assert alphas.size == 2 * 2 * 8  # one node: two edges of 8 primitives, normal and reduce
    assert 0.7e-3 < alphas.std() < 1.3e-3 and np.abs(alphas).max() < 5e-3


def test_margin_head_kernel_normal():
    """Header kernel N(0, 0.01^2), no bias (spec §6.6)."""
    head = ArcMarginHead(2000)
    head.build((None, 64))
    kernel = np.asarray(head.kernel)
    assert [w.name for w in head.weights] == ["kernel"]
    assert abs(kernel.std() - 0.01) < 0.0002 and abs(kernel.mean()) < 0.0002


def test_iresnet_teacher_init():
    """Teacher (iResNet): conv kernels N(0, 0.1^2), BN 1/0, PReLU 0.25 (spec §6.7)."""
    keras.utils.set_random_seed(0)
    model = models.build("iresnet18", input_size=16, embedding_size=8)
    _assert_prelu_and_batch_norm(model)
    kernels = np.concatenate([np.asarray(layer.kernel).ravel() for layer in _layers(model)
                              if type(layer) is keras.layers.Conv2D])
    assert abs(kernels.std() - 0.1) < 0.005 and abs(kernels.mean()) < 0.005
