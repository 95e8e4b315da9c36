"""MobileFaceNet (Chen et al., "MobileFaceNets", CCBR 2018): the paper's lightweight baseline.

The widely used insightface-style layout (the one PocketNet's paper compares against):
conv 3x3/2 (64) -> depthwise 3x3 (64) -> [bottleneck stages with expansion via 1x1 convs and
depthwise 3x3] -> 1x1 conv to 512 -> global depthwise conv (linear) -> Dense(emb, no bias) -> BN.
Every conv is followed by BN; PReLU everywhere except after the projection ("linear") convs.

Stage table (output channels, expanded channels, blocks, stride):
  (64, 128, 1, 2) then 4 residual blocks (64, 128); (128, 256, 1, 2) then 6 residual (128, 256);
  (128, 512, 1, 2) then 2 residual (128, 256).
"""

from __future__ import annotations

import keras

from pocketnet_tf.layers.common import batch_norm, conv1x1, depthwise, prelu


def _conv_block(x, filters, kernel, strides, name, *, dw=False, linear=False):
    if kernel > 1 and strides > 1:
        x = keras.layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same" if kernel > 1 else "valid"
    if dw:
        x = depthwise(kernel, f"{name}_conv", strides=strides, padding=padding)(x)
    elif kernel == 1:
        x = conv1x1(filters, f"{name}_conv", strides=strides)(x)
    else:
        x = keras.layers.Conv2D(
            filters, kernel, strides=strides, padding=padding, use_bias=False,
            kernel_initializer="he_uniform", name=f"{name}_conv",
        )(x)
    x = batch_norm(f"{name}_bn")(x)
    return x if linear else prelu(f"{name}_prelu")(x)


def _depth_wise(x, out_c, groups, strides, name, residual):
    y = _conv_block(x, groups, 1, 1, f"{name}_expand")
    y = _conv_block(y, groups, 3, strides, f"{name}_dw", dw=True)
    y = _conv_block(y, out_c, 1, 1, f"{name}_project", linear=True)
    return keras.layers.Add(name=f"{name}_add")([x, y]) if residual else y


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class MobileFaceNet(keras.Model):
    """MobileFaceNet baseline.

    Args:
      embedding_size: output size (128 in the MobileFaceNet paper).
      input_size: square input side (112); the global depthwise conv covers the final map.

    Call: ``(batch, input_size, input_size, 3)`` RGB in [-1, 1] -> ``(batch, embedding_size)``.
    """

    def __init__(self, embedding_size=128, input_size=112, **kwargs):
        if not isinstance(embedding_size, int) or embedding_size < 1:
            raise ValueError(f"MobileFaceNet: embedding_size must be a positive int, received {embedding_size!r}")
        inputs = keras.Input((input_size, input_size, 3), name="image")
        x = _conv_block(inputs, 64, 3, 2, "conv1")
        x = _conv_block(x, 64, 3, 1, "conv2_dw", dw=True)
        x = _depth_wise(x, 64, 128, 2, "conv_23", residual=False)
        for i in range(4):
            x = _depth_wise(x, 64, 128, 1, f"conv_3_{i}", residual=True)
        x = _depth_wise(x, 128, 256, 2, "conv_34", residual=False)
        for i in range(6):
            x = _depth_wise(x, 128, 256, 1, f"conv_4_{i}", residual=True)
        x = _depth_wise(x, 128, 512, 2, "conv_45", residual=False)
        for i in range(2):
            x = _depth_wise(x, 128, 256, 1, f"conv_5_{i}", residual=True)
        x = _conv_block(x, 512, 1, 1, "conv_6_sep")
        h, w = x.shape[1], x.shape[2]
        x = depthwise((h, w), "conv_6_dw_conv")(x)
        x = batch_norm("conv_6_dw_bn")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(embedding_size, use_bias=False, name="linear")(x)
        outputs = batch_norm("embedding")(x)
        kwargs.setdefault("name", "mobilefacenet")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.embedding_size = embedding_size
        self.input_size = input_size

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "embedding_size": self.embedding_size, "input_size": self.input_size,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
