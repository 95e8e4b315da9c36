"""Primitive layers against numpy references written with PyTorch's semantics."""

import json

import keras
import numpy as np
import pytest

from pocketnet_tf import ops
from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.layers import DWConv, FactorizedReduce, PoolBN, StdConv, Zero
from tests import factory, helpers


def _np_pool(x, kind, stride):
    """PyTorch 3x3 pool, padding 1: max pads with -inf, avg excludes padding (count_include_pad=False)."""
    b, h, w, c = x.shape
    ho, wo = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    fill = -np.inf if kind == "max" else 0.0
    xp = np.full((b, h + 2, w + 2, c), fill, x.dtype)
    xp[:, 1:-1, 1:-1] = x
    valid = np.zeros((h + 2, w + 2))
    valid[1:-1, 1:-1] = 1
    out = np.zeros((b, ho, wo, c), np.float64)
    for i in range(ho):
        for j in range(wo):
            win = xp[:, i * stride : i * stride + 3, j * stride : j * stride + 3]
            if kind == "max":
                out[:, i, j] = win.max(axis=(1, 2))
            else:
                out[:, i, j] = win.sum(axis=(1, 2)) / valid[i * stride : i * stride + 3, j * stride : j * stride + 3].sum()
    return out


def _np_depthwise(x, kernel, stride, pad):
    """PyTorch depthwise conv (cross-correlation), symmetric zero padding. kernel [kh, kw, C]."""
    b, h, w, c = x.shape
    k = kernel.shape[0]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    out = np.zeros((b, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            win = xp[:, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, i, j] = (win * kernel[None]).sum(axis=(1, 2))
    return out


def _np_bn(x, bn):
    gamma = np.asarray(bn.gamma) if bn.scale else 1.0
    beta = np.asarray(bn.beta) if bn.center else 0.0
    return (x - np.asarray(bn.moving_mean)) / np.sqrt(np.asarray(bn.moving_variance) + 1e-5) * gamma + beta


def _np_prelu(x, layer):
    alpha = np.asarray(layer.alpha).reshape(-1)
    return np.where(x > 0, x, x * alpha)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_poolbn_matches_pytorch_padding_semantics(kind, stride, size):
    rng = np.random.default_rng(0)
    # Strongly negative inputs: a zero pad would win every border max.
    x = rng.normal(-3.0, 1.0, size=(2, size, size, 3)).astype(np.float32)
    layer = PoolBN(kind, strides=stride)
    y = np.asarray(layer(x, training=False))
    factory.randomize_weights(layer, seed=1, prelu_slopes=True, other_weights=True)
    y = np.asarray(layer(x, training=False))
    ref = _np_bn(_np_pool(x.astype(np.float64), kind, stride), layer.bn)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_dwconv_matches_reference(k, stride):
    rng = np.random.default_rng(k * 10 + stride)
    x = rng.normal(size=(2, 10, 10, 4)).astype(np.float32)
    layer = DWConv(5, k, strides=stride)
    layer(x)
    factory.randomize_weights(layer, seed=1, prelu_slopes=True, other_weights=True)
    y = np.asarray(layer(x, training=False))
    h = _np_prelu(x.astype(np.float64), layer.prelu)
    h = _np_depthwise(h, np.asarray(layer.depthwise.kernel)[..., 0], stride, k // 2)
    h = h @ np.asarray(layer.pointwise.kernel)[0, 0]
    ref = _np_bn(h, layer.bn)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_factorized_reduce_samples_offset_grids():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 8, 4)).astype(np.float32)
    layer = FactorizedReduce(6)
    layer(x)
    factory.randomize_weights(layer, seed=1, prelu_slopes=True, other_weights=True)
    y = np.asarray(layer(x, training=False))
    h = _np_prelu(x.astype(np.float64), layer.prelu)
    a = h[:, 0::2, 0::2] * np.asarray(layer.depthwise_a.kernel)[0, 0, :, 0]
    b = h[:, 1::2, 1::2] * np.asarray(layer.depthwise_b.kernel)[0, 0, :, 0]
    a = a @ np.asarray(layer.pointwise_a.kernel)[0, 0]
    b = b @ np.asarray(layer.pointwise_b.kernel)[0, 0]
    ref = _np_bn(np.concatenate([a, b], axis=-1), layer.bn)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="filters must be even, received 5"):
        FactorizedReduce(5)
    with pytest.raises(ValueError, match="must be even"):
        FactorizedReduce(4)(np.zeros((1, 7, 7, 2), np.float32))


def test_zero_and_identity_and_stdconv_shapes_and_values():
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype(np.float32)
    z = np.asarray(Zero(2)(x))
    assert z.shape == (2, 4, 4, 3) and not z.any()
    s = StdConv(5)
    assert s(x).shape == (2, 7, 7, 5)
    assert s.get_config()["filters"] == 5 and "kernel_size" not in s.get_config()


def test_op_table_order_and_param_counts():
    """Parameter counts per primitive for C=16 (weights + BN gamma/beta), stride 1 and 2."""
    assert tuple(ops.OPS) == PRIMITIVES
    x = np.zeros((1, 8, 8, 16), np.float32)
    expected = {  # prelu C + depthwise k*k*C + pointwise C*C + BN 2C (affine)
        "dw_conv_3x3": 16 + 9 * 16 + 256 + 32,
        "dw_conv_5x5": 16 + 25 * 16 + 256 + 32,
        "dw_conv_7x7": 16 + 49 * 16 + 256 + 32,
        "dw_conv_1x1": 16 + 16 + 256 + 32,
        "max_pool_3x3": 32,
        "avg_pool_3x3": 32,
        "none": 0,
    }
    for name, count in expected.items():
        layer = ops.build_op(name, 16, 1, True, name)
        layer(x)
        assert sum(int(np.prod(w.shape)) for w in layer.trainable_weights) == count, name
    skip2 = ops.build_op("skip_connect", 16, 2, True, "skip")
    assert isinstance(skip2, FactorizedReduce)
    assert skip2(x).shape == (1, 4, 4, 16)
    assert isinstance(ops.build_op("skip_connect", 16, 1, True, "skip"), keras.layers.Identity)
    with pytest.raises(ValueError, match="unknown primitive 'sep_conv_3x3'"):
        ops.build_op("sep_conv_3x3", 16, 1, True, "x")


def test_affine_false_has_no_bn_scale_shift():
    layer = DWConv(4, 3, affine=False)
    layer(np.zeros((1, 5, 5, 4), np.float32))
    names = [w.path.split("/")[-1] for w in layer.trainable_weights]
    assert "gamma" not in names and "beta" not in names


@pytest.mark.parametrize(
    "layer",
    [DWConv(4, 5, strides=2, affine=False), StdConv(6), FactorizedReduce(4), PoolBN("avg", 2), Zero(2)],
    ids=lambda layer: type(layer).__name__,
)
def test_config_round_trip(layer):
    helpers.assert_config_round_trip(layer)


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda: DWConv(0, 3), "filters must be a positive int, received 0"),
        (lambda: DWConv(4, 4), "kernel_size must be odd, received 4"),
        (lambda: DWConv(4, 3, strides=3), "strides must be 1 or 2, received 3"),
        (lambda: PoolBN("min"), "pool_type must be 'max' or 'avg', received 'min'"),
    ],
)
def test_bad_arguments_name_received_value(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


def test_layers_inside_a_saved_model_file(tmp_path):
    inp = keras.Input((8, 8, 4))
    out = PoolBN("max", 2)(DWConv(4, 3, strides=2)(inp))
    out = FactorizedReduce(4)(keras.layers.Concatenate()([out, out]))
    model = keras.Model(inp, out)
    x = factory.random_images(2, 8, channels=4)
    helpers.assert_keras_save_load_same_outputs(model, x, tmp_path)
    json.dumps(model.get_config())


@pytest.mark.parametrize(
    "make, shape, out_shape, trainable, non_trainable",
    [
        # PReLU slope, depthwise kernel, pointwise kernel, BN gamma/beta; BN moving mean/variance.
        (lambda: DWConv(4, 3, strides=2), (2, 6, 6, 4), (2, 3, 3, 4), 5, 2),
        (lambda: DWConv(4, 5, affine=False), (2, 6, 6, 4), (2, 6, 6, 4), 3, 2),
        # StdConv is DWConv with k=1: PReLU slope, depthwise 1x1, pointwise 1x1, BN gamma/beta.
        (lambda: StdConv(6), (2, 4, 4, 4), (2, 4, 4, 6), 5, 2),
        # Shared PReLU slope, two (strided depthwise 1x1, pointwise 1x1) paths, BN gamma/beta.
        (lambda: FactorizedReduce(4), (2, 6, 6, 4), (2, 3, 3, 4), 7, 2),
        (lambda: PoolBN("max", 2), (2, 6, 6, 4), (2, 3, 3, 4), 2, 2),
        (lambda: PoolBN("avg", 1, affine=False), (2, 5, 5, 4), (2, 5, 5, 4), 0, 2),
        (lambda: Zero(2), (2, 6, 6, 4), (2, 3, 3, 4), 0, 0),
    ],
    ids=["dwconv_s2", "dwconv_k5_noaffine", "stdconv", "factorized_reduce", "maxpool_bn_s2", "avgpool_bn",
         "zero_s2"],
)
def test_layer_harness(make, shape, out_shape, trainable, non_trainable, tmp_path):
    helpers.run_layer_test(make, factory.random_images(shape[0], shape[1], channels=shape[3]), tmp_path,
                           expected_output_shape=out_shape, expected_num_trainable_weights=trainable,
                           expected_num_non_trainable_weights=non_trainable)
