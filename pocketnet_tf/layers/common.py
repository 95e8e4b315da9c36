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


#: Activation dtypes of the fused training kernels (float32 and the mixed-precision compute types).
_FUSED_DTYPES = ("float32", "float16", "bfloat16")


def _tf_backend() -> bool:
    return keras.backend.backend() == "tensorflow"


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training step is one fused kernel.

    The class keeps Keras' name on purpose: Keras files store a model's variables under paths
    derived from the layer *class* names, so with the same name, ``.keras`` files written with
    plain Keras layers load into this class and the other way round.

    Keras 3 normalises with separate moments / subtract / multiply ops (about a dozen ops and
    their gradients per layer); on the TensorFlow backend a 4-D channels-last batch in training
    mode goes through ``FusedBatchNormV3`` instead (oneDNN on x86), forward and backward. The
    function is the same: normalise with the biased batch variance. The moving variance is
    updated with the unbiased batch variance, as PyTorch's ``BatchNorm2d`` does (plain Keras
    uses the biased one; the two differ by ``n / (n - 1)`` with ``n = N*H*W``). Inference, other
    ranks, masks and other backends use the parent's code unchanged, so exported graphs are
    identical.

    Mixed precision: float16/bfloat16 activations go through the same kernel, which normalises
    with float32 statistics, scale and offset (its ``U`` type) and returns the input's type, so
    the moving statistics stay float32 and keep the unbiased-variance rule.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and mask is None and _tf_backend() and len(inputs.shape) == 4
                and self.axis in (-1, 3) and not self.renorm and inputs.dtype in _FUSED_DTYPES):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma.value, "float32") if self.scale else tf.ones((channels,), "float32")
        offset = tf.cast(self.beta.value, "float32") if self.center else tf.zeros((channels,), "float32")
        outputs, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=tf.zeros((0,), "float32"),
            variance=tf.zeros((0,), "float32"), epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + tf.stop_gradient(mean) * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + tf.stop_gradient(unbiased_variance) * (1.0 - momentum))
        return outputs


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class PReLU(keras.layers.PReLU):
    """``keras.layers.PReLU`` with a cheaper training graph.

    Keras computes ``relu(x) - alpha * relu(-x)`` (six ops forward, about ten backward). In
    training this layer computes ``where(x > 0, x, alpha * x)`` with a hand-written gradient
    (``dx = where(x > 0, g, alpha * g)``, ``dalpha = sum(where(x > 0, 0, g * x))``), as PyTorch
    does. Inference keeps the parent's formula, the one the TFLite converter turns into PRELU.
    Under mixed precision the slope is used in the activations' type and its gradient is summed
    in float32 (a bfloat16 running sum over N·H·W terms loses the small ones).
    """

    def call(self, inputs, training=None):
        if not (training and _tf_backend() and inputs.dtype in _FUSED_DTYPES):
            return super().call(inputs)
        import tensorflow as tf

        alpha = tf.cast(self.alpha.value, inputs.dtype)
        # Axes of ``inputs`` (batch included) over which one slope is shared.
        reduce_axes = tuple([0] + [i + 1 for i, d in enumerate(alpha.shape) if d == 1 and inputs.shape[i + 1] != 1])
        forward, backward = _prelu_kernels()

        @tf.custom_gradient
        def _prelu(x, a):
            def grad(g):
                dx, da = backward(g, x, a, reduce_axes)
                return dx, da

            return forward(x, a), grad

        return _prelu(inputs, alpha)


_PRELU_KERNELS = None


def _prelu_kernels():
    """PReLU's forward and backward as two small XLA-compiled functions (one fused loop each).

    Unfused TensorFlow ops make four to six full passes over the activations per PReLU; XLA
    fuses them into one pass forward and one pass (plus the slope reduction) backward. Only
    these two clusters are compiled, not the model: compilation takes milliseconds per shape.
    """
    global _PRELU_KERNELS
    if _PRELU_KERNELS is None:
        import tensorflow as tf

        @tf.function(jit_compile=True, reduce_retracing=False)
        def forward(x, a):
            return tf.where(x > 0, x, a * x)

        @tf.function(jit_compile=True, reduce_retracing=False)
        def backward(g, x, a, reduce_axes):
            positive = x > 0
            dx = tf.where(positive, g, a * g)
            da = tf.reduce_sum(tf.cast(tf.where(positive, tf.zeros_like(g), g * x), "float32"), axis=reduce_axes,
                               keepdims=True)
            return dx, tf.reshape(tf.cast(da, a.dtype), tf.shape(a))

        _PRELU_KERNELS = forward, backward
    return _PRELU_KERNELS


def batch_norm(name: str, *, affine: bool = True, axis: int = -1) -> keras.layers.BatchNormalization:
    """BatchNormalization with PyTorch's epsilon and momentum; ``affine=False`` drops gamma/beta."""
    return BatchNormalization(
        axis=axis,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        center=affine,
        scale=affine,
        name=name,
    )


def prelu(name: str) -> keras.layers.PReLU:
    """Per-channel PReLU (one slope per channel, shared over H and W), slopes start at 0.25."""
    return PReLU(
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
