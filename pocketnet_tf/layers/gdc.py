"""The search tail's grouped global convolution (spec §2.2: 7x7, 512 -> 512, 128 groups, no padding)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class GroupedGlobalConv(keras.layers.Layer):
    """A grouped convolution whose kernel covers the whole input map (output 1x1), no bias.

    Numerically ``Conv2D(filters, (H, W), groups=groups, padding="valid", use_bias=False)`` with
    the same kernel layout ``(H, W, C_in / groups, filters)`` (output channel o belongs to group
    ``o // (filters / groups)``), computed as one einsum. Keras runs grouped convolutions on CPU
    through a freshly traced XLA function per call, which costs seconds per eager call; this
    layer needs no XLA.

    Args:
      filters: output channels.
      groups: number of groups (divides the input channels and ``filters``).

    Call: ``(batch, H, W, C)`` -> ``(batch, 1, 1, filters)``.
    """

    def __init__(self, filters, groups, **kwargs):
        super().__init__(**kwargs)
        for key, value in (("filters", filters), ("groups", groups)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GroupedGlobalConv: {key} must be a positive int, received {value!r}")
        if filters % groups:
            raise ValueError(f"GroupedGlobalConv: groups ({groups}) must divide filters ({filters})")
        self.filters = filters
        self.groups = groups

    def build(self, input_shape):
        _, h, w, c = tuple(input_shape)
        if h is None or w is None:
            raise ValueError(f"GroupedGlobalConv {self.name}: needs a static map size, received {input_shape}")
        if c % self.groups:
            raise ValueError(f"GroupedGlobalConv {self.name}: groups ({self.groups}) must divide the {c} input channels")
        self.kernel = self.add_weight(
            shape=(h, w, c // self.groups, self.filters), initializer="he_uniform", name="kernel"
        )

    def call(self, inputs):
        h, w, cg, _ = self.kernel.shape
        g, og = self.groups, self.filters // self.groups
        x = ops.reshape(inputs, (-1, h, w, g, cg))
        k = ops.reshape(self.kernel, (h, w, cg, g, og))
        y = ops.einsum("bhwgc,hwcgo->bgo", x, k)
        return ops.reshape(y, (-1, 1, 1, self.filters))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, groups=self.groups)
        return config
