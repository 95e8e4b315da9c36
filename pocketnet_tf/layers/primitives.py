"""The search-space operations of PocketNet as Keras 3 layers (spec §1.2).

Every layer is channels-last and numerically equivalent to the PyTorch original in inference
mode: stride-2 ops pad symmetrically and explicitly (Keras ``"same"`` pads asymmetrically for
stride 2 and would shift the sampling grid by one pixel), max pooling never sees a zero pad, and
average pooling divides by the number of valid (non-padded) pixels.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from pocketnet_tf.layers.common import batch_norm, conv1x1, depthwise, prelu


def _check_positive_int(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, received {value!r}")


def _check_stride(owner: str, strides) -> None:
    if strides not in (1, 2):
        raise ValueError(f"{owner}: strides must be 1 or 2, received {strides!r}")


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class DWConv(keras.layers.Layer):
    """``dw_conv_kxk``: PReLU -> depthwise k x k (stride s, padding k//2) -> pointwise 1x1 -> BN.

    Spec §1.2 (DWConv). Input and output widths may differ only through the pointwise conv; in
    PocketNet they are equal.

    Args:
      filters: output channels of the pointwise convolution.
      kernel_size: odd depthwise kernel size (1, 3, 5 or 7 in PocketNet).
      strides: 1 or 2.
      affine: whether the BatchNormalization has learnable scale and shift (search: False).

    Call arguments:
      inputs: ``(batch, H, W, C_in)``.
      training: BatchNorm mode.

    Output: ``(batch, ceil(H / s), ceil(W / s), filters)``.
    """

    def __init__(self, filters, kernel_size, strides=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(type(self).__name__, "filters", filters)
        _check_positive_int(type(self).__name__, "kernel_size", kernel_size)
        if kernel_size % 2 != 1:
            raise ValueError(f"{type(self).__name__}: kernel_size must be odd, received {kernel_size}")
        _check_stride(type(self).__name__, strides)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.affine = bool(affine)
        pad = self.kernel_size // 2
        self.prelu = prelu("prelu")
        # Stride 1 with an odd kernel: "same" equals PyTorch's symmetric padding.
        self.pad = keras.layers.ZeroPadding2D(pad, name="pad") if (self.strides > 1 and pad) else None
        self.depthwise = depthwise(
            self.kernel_size, "depthwise", strides=self.strides,
            padding="valid" if (self.strides > 1 or pad == 0) else "same",
        )
        self.pointwise = conv1x1(self.filters, "pointwise")
        self.bn = batch_norm("bn", affine=self.affine)

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.prelu.build(shape)
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.depthwise.build(shape)
        shape = self.depthwise.compute_output_shape(shape)
        self.pointwise.build(shape)
        shape = self.pointwise.compute_output_shape(shape)
        self.bn.build(shape)

    def call(self, inputs, training=None):
        x = self.prelu(inputs)
        if self.pad is not None:
            x = self.pad(x)
        x = self.depthwise(x)
        x = self.pointwise(x)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        if self.pad is not None:
            shape = self.pad.compute_output_shape(shape)
        shape = self.depthwise.compute_output_shape(shape)
        return self.pointwise.compute_output_shape(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, kernel_size=self.kernel_size, strides=self.strides, affine=self.affine
        )
        return config


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class StdConv(DWConv):
    """Cell input pre-processing: PReLU -> depthwise 1x1 -> pointwise 1x1 -> BN (spec §1.2).

    Structurally a ``DWConv`` with a 1x1 depthwise kernel (a learnable per-channel scale).

    Args:
      filters: output channels (the cell width).
      affine: learnable BN scale/shift (False inside the search network).
    """

    def __init__(self, filters, affine=True, **kwargs):
        super().__init__(filters, kernel_size=1, strides=1, affine=affine, **kwargs)

    def get_config(self):
        config = super().get_config()
        del config["kernel_size"], config["strides"]
        return config


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class FactorizedReduce(keras.layers.Layer):
    """Halves H and W with two offset 1x1 stride-2 paths (spec §1.2, FactorizedReduce).

    A shared PReLU, then path A samples pixels (0, 0), (0, 2), ... and path B, after dropping the
    first row and column, samples (1, 1), (1, 3), ...; each path is a depthwise 1x1 (stride 2)
    followed by a pointwise conv to ``filters // 2``; the paths are concatenated [A | B] and
    batch-normalised.

    Args:
      filters: even number of output channels.
      affine: learnable BN scale/shift.

    Output: ``(batch, H / 2, W / 2, filters)`` for even H, W.
    """

    def __init__(self, filters, affine=True, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(type(self).__name__, "filters", filters)
        if filters % 2:
            raise ValueError(f"{type(self).__name__}: filters must be even, received {filters}")
        self.filters = int(filters)
        self.affine = bool(affine)
        self.prelu = prelu("prelu")
        self.depthwise_a = depthwise(1, "depthwise_a", strides=2)
        self.pointwise_a = conv1x1(self.filters // 2, "pointwise_a")
        self.depthwise_b = depthwise(1, "depthwise_b", strides=2)
        self.pointwise_b = conv1x1(self.filters // 2, "pointwise_b")
        self.concat = keras.layers.Concatenate(axis=-1, name="concat")
        self.bn = batch_norm("bn", affine=self.affine)

    def build(self, input_shape):
        shape = tuple(input_shape)
        if shape[1] is not None and (shape[1] % 2 or shape[2] % 2):
            raise ValueError(
                f"{type(self).__name__}: input height and width must be even, received {shape}"
            )
        self.prelu.build(shape)
        self.depthwise_a.build(shape)
        self.depthwise_b.build(shape)
        half = self.depthwise_a.compute_output_shape(shape)
        self.pointwise_a.build(half)
        self.pointwise_b.build(half)
        branch = half[:-1] + (self.filters // 2,)
        self.concat.build([branch, branch])
        self.bn.build(half[:-1] + (self.filters,))

    def call(self, inputs, training=None):
        x = self.prelu(inputs)
        a = self.pointwise_a(self.depthwise_a(x))
        # In training, x[:, 1:, 1:, :] as a plain slice: its gradient is a cheap pad (a strided
        # slice's gradient, StridedSliceGrad, is a slow generic kernel on CPU). Inference keeps
        # the strided slice, which XNNPACK takes (a SLICE with size -1 it does not).
        _, h, w, c = x.shape
        if training and None not in (h, w, c):
            shifted = ops.slice(x, (0, 1, 1, 0), (-1, h - 1, w - 1, c))
        else:
            shifted = x[:, 1:, 1:, :]
        b = self.pointwise_b(self.depthwise_b(shifted))
        return self.bn(self.concat([a, b]), training=training)

    def compute_output_shape(self, input_shape):
        shape = self.depthwise_a.compute_output_shape(tuple(input_shape))
        return shape[:-1] + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, affine=self.affine)
        return config


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class PoolBN(keras.layers.Layer):
    """3x3 max or average pooling (stride s, padding 1) followed by BN (spec §1.2, PoolBN).

    Max pooling, stride 2: the input is padded by repeating its border rows/columns, which is
    exactly PyTorch's implicit -inf padding (every window that touches the pad also contains the
    border pixel it copies) and stays quantisation-friendly. Average pooling divides by the number
    of valid pixels in each window (``count_include_pad=False``).

    Args:
      pool_type: ``"max"`` or ``"avg"``.
      strides: 1 or 2.
      affine: learnable BN scale/shift.
    """

    def __init__(self, pool_type, strides=1, affine=True, **kwargs):
        super().__init__(**kwargs)
        if pool_type not in ("max", "avg"):
            raise ValueError(f"{type(self).__name__}: pool_type must be 'max' or 'avg', received {pool_type!r}")
        _check_stride(type(self).__name__, strides)
        self.pool_type = pool_type
        self.strides = int(strides)
        self.affine = bool(affine)
        padding = "same" if self.strides == 1 else "valid"
        cls = keras.layers.MaxPooling2D if pool_type == "max" else keras.layers.AveragePooling2D
        self.pool = cls(pool_size=3, strides=self.strides, padding=padding, name="pool")
        self.bn = batch_norm("bn", affine=self.affine)
        self._avg_correction = None

    def build(self, input_shape):
        shape = tuple(input_shape)
        if self.strides == 2 and self.pool_type == "avg":
            if shape[1] is None or shape[2] is None:
                raise ValueError(f"{type(self).__name__}: stride-2 average pooling needs static H, W, got {shape}")
            # Number of valid pixels under each window of the zero-padded input.
            h, w = shape[1], shape[2]
            valid = np.pad(np.ones((h, w), np.float32), 1)
            ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
            counts = np.zeros((ho, wo), np.float32)
            for i in range(ho):
                for j in range(wo):
                    counts[i, j] = valid[2 * i : 2 * i + 3, 2 * j : 2 * j + 3].sum()
            self._avg_correction = (9.0 / counts).reshape(1, ho, wo, 1)
        out = self.compute_output_shape(shape)
        self.bn.build(out)

    def _pad_input(self, x):
        if self.strides == 1:
            return x
        if self.pool_type == "max":
            x = ops.concatenate([x[:, :1], x, x[:, -1:]], axis=1)
            return ops.concatenate([x[:, :, :1], x, x[:, :, -1:]], axis=2)
        return ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])

    def call(self, inputs, training=None):
        x = self.pool(self._pad_input(inputs))
        if self._avg_correction is not None:
            x = x * ops.convert_to_tensor(self._avg_correction, dtype=x.dtype)
        return self.bn(x, training=training)

    def compute_output_shape(self, input_shape):
        b, h, w, c = tuple(input_shape)
        if self.strides == 1:
            return (b, h, w, c)
        return (b, None if h is None else (h - 1) // 2 + 1, None if w is None else (w - 1) // 2 + 1, c)

    def get_config(self):
        config = super().get_config()
        config.update(pool_type=self.pool_type, strides=self.strides, affine=self.affine)
        return config


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class Zero(keras.layers.Layer):
    """The ``none`` primitive: zeros shaped like the (stride-subsampled) input (spec §1.2, Zero).

    For stride 2 the output keeps pixels (0, 0), (0, 2), ... i.e. ceil(H/2) x ceil(W/2).
    """

    def __init__(self, strides=1, **kwargs):
        super().__init__(**kwargs)
        _check_stride(type(self).__name__, strides)
        self.strides = int(strides)

    def call(self, inputs):
        x = inputs if self.strides == 1 else inputs[:, :: self.strides, :: self.strides, :]
        return ops.zeros_like(x)

    def compute_output_shape(self, input_shape):
        b, h, w, c = tuple(input_shape)
        s = self.strides
        return (b, None if h is None else -(-h // s), None if w is None else -(-w // s), c)

    def get_config(self):
        config = super().get_config()
        config.update(strides=self.strides)
        return config
