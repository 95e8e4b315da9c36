"""The GDC embedding tail shared by the derived and the search networks (spec §2.2, §3.1).

* :class:`GroupedGlobalConv`: the search tail's grouped global convolution (7x7, 512 -> 512,
  128 groups, no padding);
* :func:`embedding_tail`: the tail's layers, in order, with the names the weight importer and the
  TFLite validator match on (``tail_0_prelu`` ... ``tail_7_bn``, ``embedding``).

The tail is a list of ordinary layers rather than one composite layer on purpose: a composite
layer would nest its weights under its own name (``head/tail_4_gdc/kernel``), which changes the
names of existing ``.keras`` files, imported checkpoints and exported graphs.
"""

from __future__ import annotations

import keras
from keras import ops

from pocketnet_tf.layers.common import batch_norm, conv1x1, depthwise, prelu

__all__ = ["GroupedGlobalConv", "embedding_tail"]


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


def embedding_tail(head_width: int, embedding_size: int, *, map_size=None, groups: int | None = None) -> list:
    """The GDC embedding tail as a list of layers, applied in order to the last cell's output.

    PReLU, 1x1 conv to ``head_width``, BN, PReLU, global grouped conv over the final map, BN, 1x1
    conv to ``embedding_size``, BN, flatten -> ``(batch, embedding_size)``.

    Args:
      head_width: channels of the tail's 1x1 conv and GDC.
      embedding_size: output embedding size.
      map_size: ``(h, w)`` of the final map: a depthwise global conv (the derived networks).
      groups: groups of a :class:`GroupedGlobalConv` that covers the map at build time (the search
        network). Exactly one of ``map_size`` and ``groups`` is given.
    """
    if (map_size is None) == (groups is None):
        raise ValueError(f"embedding_tail: give exactly one of map_size and groups, received {map_size!r} and {groups!r}")
    gdc = (depthwise(tuple(map_size), "tail_4_gdc") if groups is None
           else GroupedGlobalConv(head_width, groups, name="tail_4_gdc"))
    return [
        prelu("tail_0_prelu"),
        conv1x1(head_width, "tail_1_conv"),
        batch_norm("tail_2_bn"),
        prelu("tail_3_prelu"),
        gdc,
        batch_norm("tail_5_bn"),
        conv1x1(embedding_size, "tail_6_conv"),
        batch_norm("tail_7_bn"),
        keras.layers.Flatten(name="embedding"),
    ]
