"""The derived PocketNet network for any genotype (spec §3).

``PocketNet`` is a functional Keras model assembled in its constructor. Its config is just the
defining numbers (genotype, width, depth, embedding size, ...), so a ``.keras`` file rebuilds the
graph and then reads the weights.

Layer names are stable and mirror the PyTorch module tree, which the weight importer and the
TFLite validator rely on:

- ``stem_0_conv``, ``stem_1_bn`` (``stem.0``, ``stem.1``)
- ``cell{i}_preproc0``, ``cell{i}_preproc1`` (``cells.i.preproc0/1``)
- ``cell{i}_node{n}_edge{e}_{primitive}`` (``cells.i.dag.n.e``), node sums ``cell{i}_node{n}``,
  cell output ``cell{i}_out``
- ``tail_0_prelu`` ... ``tail_7_bn`` (``tail.0`` ... ``tail.7``), then ``embedding`` (flatten).
"""

from __future__ import annotations

import keras

from pocketnet_tf import genotypes as genotypes_lib
from pocketnet_tf.layers.common import batch_norm
from pocketnet_tf.layers.gdc import embedding_tail
from pocketnet_tf.layers.primitives import FactorizedReduce, StdConv
from pocketnet_tf.ops import build_op


def reduction_indices(num_cells: int) -> tuple[int, ...]:
    """Cells that halve the resolution: {L//3, 2L//3, L-1} (spec §2.2, §3.2)."""
    return tuple(sorted({num_cells // 3, 2 * num_cells // 3, num_cells - 1}))


def default_head_width(embedding_size: int) -> int:
    """The original's "con": 1024 for a 512-d embedding, otherwise 512 (spec §3.1)."""
    return 1024 if embedding_size == 512 else 512


def derived_cell(s0, s1, *, genotype, index, filters, reduction, reduction_prev):
    """Wires one derived cell (spec §1.3) into the functional graph; returns its output tensor."""
    prefix = f"cell{index}"
    if reduction_prev:
        p0 = FactorizedReduce(filters, name=f"{prefix}_preproc0")(s0)
    else:
        p0 = StdConv(filters, name=f"{prefix}_preproc0")(s0)
    p1 = StdConv(filters, name=f"{prefix}_preproc1")(s1)
    states = [p0, p1]
    nodes, concat = genotype.cell(reduction)
    for n, edges in enumerate(nodes):
        outs = []
        for e, (primitive, src) in enumerate(edges):
            strides = 2 if (reduction and src < 2) else 1
            op = build_op(primitive, filters, strides, True, f"{prefix}_node{n}_edge{e}_{primitive}")
            outs.append(op(states[src]))
        states.append(outs[0] if len(outs) == 1 else keras.layers.Add(name=f"{prefix}_node{n}")(outs))
    return keras.layers.Concatenate(axis=-1, name=f"{prefix}_out")([states[i] for i in concat])


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class PocketNet(keras.Model):
    """PocketNet derived network (Boutros et al. 2022, §3 of the spec; ``AugmentCNN`` originally).

    stem (3x3 conv, stride 2, 4C channels, BN) -> ``num_cells`` cells with reductions at
    {L//3, 2L//3, L-1} -> GDC embedding head (PReLU, 1x1 conv to ``head_width``, BN, PReLU,
    global depthwise conv over the final map, BN, 1x1 conv to ``embedding_size``, BN, flatten).

    Args:
      genotype: a :class:`~pocketnet_tf.genotypes.Genotype`, a published name
        (``"softmax_casia"``), a genotype dict, JSON or original text, or a file path.
      channels: initial cell width C (16 for PocketNetS, 32 for PocketNetM).
      num_cells: number of cells L (18 for S, 9 for M).
      embedding_size: output embedding size.
      stem_multiplier: the stem has ``stem_multiplier * channels`` outputs (4 here, 3 in search).
      head_width: channels of the embedding head; default 512 (1024 for a 512-d embedding).
      input_size: square input side; the head's global depthwise kernel covers the final map
        (7x7 for 112).

    Call: ``(batch, input_size, input_size, 3)`` float32 RGB in [-1, 1] -> ``(batch, embedding_size)``
    raw (not L2-normalised) embedding.
    """

    def __init__(
        self,
        genotype="softmax_casia",
        channels=16,
        num_cells=18,
        embedding_size=128,
        stem_multiplier=4,
        head_width=None,
        input_size=112,
        **kwargs,
    ):
        geno = genotypes_lib.resolve(genotype)
        for key, value, low in (
            ("channels", channels, 1), ("num_cells", num_cells, 3), ("embedding_size", embedding_size, 1),
            ("stem_multiplier", stem_multiplier, 1), ("input_size", input_size, 16),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"PocketNet: {key} must be an int >= {low}, received {value!r}")
        head = default_head_width(embedding_size) if head_width is None else int(head_width)

        inputs = keras.Input((input_size, input_size, 3), name="image")
        x = keras.layers.ZeroPadding2D(1, name="stem_pad")(inputs)
        x = keras.layers.Conv2D(
            stem_multiplier * channels, 3, strides=2, padding="valid", use_bias=False,
            kernel_initializer="he_uniform", name="stem_0_conv",
        )(x)
        stem = batch_norm("stem_1_bn")(x)

        s0 = s1 = stem
        reductions = reduction_indices(num_cells)
        width = channels
        reduction_prev = False
        for i in range(num_cells):
            reduction = i in reductions
            if reduction:
                width *= 2
            out = derived_cell(
                s0, s1, genotype=geno, index=i, filters=width,
                reduction=reduction, reduction_prev=reduction_prev,
            )
            s0, s1 = s1, out
            reduction_prev = reduction

        x = s1
        for layer in embedding_tail(head, embedding_size, map_size=(s1.shape[1], s1.shape[2])):
            x = layer(x)
        outputs = x

        kwargs.setdefault("name", "pocketnet")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.genotype = geno
        self.channels = channels
        self.num_cells = num_cells
        self.embedding_size = embedding_size
        self.stem_multiplier = stem_multiplier
        self.head_width = head
        self.input_size = input_size

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "genotype": self.genotype.to_dict(),
            "channels": self.channels,
            "num_cells": self.num_cells,
            "embedding_size": self.embedding_size,
            "stem_multiplier": self.stem_multiplier,
            "head_width": self.head_width,
            "input_size": self.input_size,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
