"""iResNet teachers (insightface ``iresnet18/34/50/100``; spec §6.7).

conv 3x3 (3 -> 64, stride 1) -> BN -> PReLU; four stages of IBasicBlocks (widths 64/128/256/512,
the first block of each stage has stride 2 and a 1x1-conv + BN shortcut); then BN -> flatten ->
dropout -> Dense(emb) -> BatchNorm1d with its scale fixed at 1 (Keras: ``scale=False``).

IBasicBlock: BN -> conv3x3 -> BN -> PReLU -> conv3x3 (stride) -> BN, plus the shortcut.
PyTorch flattens NCHW (channel-major) before the dense layer; this model flattens NHWC, so the
weight importer permutes the dense kernel rows.

Layer names follow the PyTorch state_dict keys with ``.`` -> ``_`` (``layer3_12_conv2``,
``layer1_0_downsample_0``, ``fc``, ``features``).
"""

from __future__ import annotations

import keras

from pocketnet_tf.layers.common import batch_norm, prelu

STAGES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}
WIDTHS = (64, 128, 256, 512)


def _conv(filters, kernel, strides, name):
    return keras.layers.Conv2D(
        filters, kernel, strides=strides, padding="valid", use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.1), name=name,
    )


def _conv3x3(x, filters, strides, name):
    # Explicit symmetric padding: identical to PyTorch for both strides.
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return _conv(filters, 3, strides, name)(x)


def _block(x, filters, strides, name):
    shortcut = x
    y = batch_norm(f"{name}_bn1")(x)
    y = _conv3x3(y, filters, 1, f"{name}_conv1")
    y = batch_norm(f"{name}_bn2")(y)
    y = prelu(f"{name}_prelu")(y)
    y = _conv3x3(y, filters, strides, f"{name}_conv2")
    y = batch_norm(f"{name}_bn3")(y)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, f"{name}_downsample_0")(x)
        shortcut = batch_norm(f"{name}_downsample_1")(shortcut)
    return keras.layers.Add(name=f"{name}_add")([y, shortcut])


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class IResNet(keras.Model):
    """insightface iResNet backbone.

    Args:
      depth: 18, 34, 50, 100 or 200.
      embedding_size: output size (512 in public insightface checkpoints; PocketNet's teacher: 128).
      input_size: square input side (112 in the original).
      dropout: dropout rate before the dense layer (0 in the original).

    Call: ``(batch, input_size, input_size, 3)`` RGB in [-1, 1] -> ``(batch, embedding_size)``.
    """

    def __init__(self, depth=100, embedding_size=512, input_size=112, dropout=0.0, **kwargs):
        if depth not in STAGES:
            raise ValueError(f"IResNet: depth must be one of {sorted(STAGES)}, received {depth!r}")
        if not isinstance(embedding_size, int) or embedding_size < 1:
            raise ValueError(f"IResNet: embedding_size must be a positive int, received {embedding_size!r}")
        inputs = keras.Input((input_size, input_size, 3), name="image")
        x = _conv3x3(inputs, 64, 1, "conv1")
        x = batch_norm("bn1")(x)
        x = prelu("prelu")(x)
        for s, (blocks, width) in enumerate(zip(STAGES[depth], WIDTHS), start=1):
            for b in range(blocks):
                x = _block(x, width, 2 if b == 0 else 1, f"layer{s}_{b}")
        x = batch_norm("bn2")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name="dropout")(x)
        x = keras.layers.Dense(embedding_size, name="fc")(x)
        # BatchNorm1d whose scale is frozen at 1 in the original: no scale variable at all.
        outputs = keras.layers.BatchNormalization(
            epsilon=1e-5, momentum=0.9, scale=False, name="features"
        )(x)
        kwargs.setdefault("name", f"iresnet{depth}")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.depth = depth
        self.embedding_size = embedding_size
        self.input_size = input_size
        self.dropout = float(dropout)

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable, "depth": self.depth,
            "embedding_size": self.embedding_size, "input_size": self.input_size, "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
