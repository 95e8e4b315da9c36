"""Building blocks with PyTorch-equivalent defaults (spec §4.3).

PyTorch and Keras disagree on several defaults that change numbers: BatchNorm epsilon (1e-5 vs
1e-3) and momentum (0.1 vs 0.9 in the other convention), PReLU's initial slope (0.25 vs 0), and
the fan-in of depthwise kernels. These factories fix them in one place.
"""

from __future__ import annotations

import math

import keras

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9  # Keras convention; equals PyTorch's momentum=0.1.
PRELU_INIT = 0.25


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class DepthwiseUniform(keras.initializers.Initializer):
    """U(-sqrt(6 / (kh * kw)), +sqrt(6 / (kh * kw))) for a depthwise kernel ``[kh, kw, C, 1]``.

    PyTorch's kaiming-uniform default takes fan_in = (C_in / groups) * kh * kw = kh * kw for a
    depthwise convolution, whereas Keras' fan-in of a DepthwiseConv2D kernel includes C.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        limit = math.sqrt(6.0 / (shape[0] * shape[1]))  # fan_in = kh * kw
        return keras.random.uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self):
        return {"seed": self.seed}


def batch_norm(name: str, *, affine: bool = True, axis: int = -1) -> keras.layers.BatchNormalization:
    """BatchNormalization with PyTorch's epsilon and momentum; ``affine=False`` drops gamma/beta."""
    return keras.layers.BatchNormalization(
        axis=axis,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        center=affine,
        scale=affine,
        name=name,
    )


def prelu(name: str) -> keras.layers.PReLU:
    """Per-channel PReLU (one slope per channel, shared over H and W), slopes start at 0.25."""
    return keras.layers.PReLU(
        alpha_initializer=keras.initializers.Constant(PRELU_INIT), shared_axes=[1, 2], name=name
    )


def conv1x1(filters: int, name: str, strides: int = 1) -> keras.layers.Conv2D:
    """Pointwise convolution without bias, kaiming-uniform initialised as in PyTorch."""
    return keras.layers.Conv2D(
        filters,
        1,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer="he_uniform",
        name=name,
    )


def depthwise(kernel_size, name: str, strides: int = 1, padding: str = "valid"):
    """Depthwise convolution without bias (depth multiplier 1), PyTorch-style initialisation."""
    return keras.layers.DepthwiseConv2D(
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=DepthwiseUniform(),
        name=name,
    )
