"""SearchCell: a cell of the search network with every candidate edge (spec §1.3, §1.4)."""

from __future__ import annotations

import keras

from pocketnet_tf.layers.primitives import FactorizedReduce, StdConv
from pocketnet_tf.search.mixed_op import MixedOp


def edge_count(num_nodes: int) -> int:
    """Edges of a cell with ``num_nodes`` intermediate nodes: node i has i + 2 inputs."""
    return sum(i + 2 for i in range(num_nodes))


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class SearchCell(keras.layers.Layer):
    """A DARTS cell in which every edge is a :class:`MixedOp` (spec §1.3).

    The two inputs are pre-processed to the cell width: s0 (output of cell k-2) by a
    FactorizedReduce if the previous cell was a reduction cell (s0 is then twice the size of s1),
    otherwise by a StdConv; s1 always by a StdConv. Both use affine-free batch norm (spec §1.4).
    Intermediate node i sums one mixed edge from each earlier state (the two inputs, then nodes
    0..i-1); in a reduction cell the edges leaving the inputs have stride 2. The output is the
    channel concatenation of all intermediate nodes.

    Args:
      filters: cell width C.
      reduction: whether the cell halves the resolution.
      reduction_prev: whether the previous cell was a reduction cell.
      num_nodes: intermediate nodes (4 in PocketNet).

    Call arguments:
      s0: ``(batch, H0, W0, C0)``; s1: ``(batch, H1, W1, C1)`` with H0 = H1, or H0 = 2 * H1 after
        a reduction.
      mixing_weights: list of ``num_nodes`` tensors, node i of shape ``(i + 2, len(PRIMITIVES))``
        (the row-wise softmax of this cell type's alphas).
      training: batch-norm mode.

    Output: ``(batch, H1 / s, W1 / s, num_nodes * filters)`` with s = 2 for a reduction cell.

    Sub-layer names: ``preproc0``, ``preproc1``, ``node{i}_edge{j}`` (edge from state j into node
    i), matching the original ``cells.k.preproc0/1`` and ``cells.k.dag.i.j``.
    """

    def __init__(self, filters, reduction=False, reduction_prev=False, num_nodes=4, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"SearchCell: filters must be a positive int, received {filters!r}")
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
            raise ValueError(f"SearchCell: num_nodes must be a positive int, received {num_nodes!r}")
        self.filters = filters
        self.reduction = bool(reduction)
        self.reduction_prev = bool(reduction_prev)
        self.num_nodes = num_nodes
        if self.reduction_prev:
            self.preproc0 = FactorizedReduce(filters, affine=False, name="preproc0")
        else:
            self.preproc0 = StdConv(filters, affine=False, name="preproc0")
        self.preproc1 = StdConv(filters, affine=False, name="preproc1")
        # Flat list in (node, source) order; ``self.edge(i, j)`` indexes it.
        self.mixed_ops = [
            MixedOp(filters, strides=2 if (self.reduction and j < 2) else 1, name=f"node{i}_edge{j}")
            for i in range(num_nodes)
            for j in range(i + 2)
        ]

    def edge(self, node: int, source: int) -> MixedOp:
        return self.mixed_ops[edge_count(node) + source]

    def build(self, s0_shape, s1_shape, mixing_weights_shape=None):
        s0_shape, s1_shape = tuple(s0_shape), tuple(s1_shape)
        self.preproc0.build(s0_shape)
        self.preproc1.build(s1_shape)
        p0 = self.preproc0.compute_output_shape(s0_shape)
        p1 = self.preproc1.compute_output_shape(s1_shape)
        if p0[1:3] != p1[1:3]:
            raise ValueError(
                f"SearchCell {self.name}: pre-processed inputs disagree in size: s0 {s0_shape} -> {p0}, "
                f"s1 {s1_shape} -> {p1} (reduction_prev={self.reduction_prev})"
            )
        states = [p0, p1]
        for i in range(self.num_nodes):
            for j in range(i + 2):
                op = self.edge(i, j)
                op.build(states[j])
            states.append(self.edge(i, 0).compute_output_shape(states[0]))
        self.built = True

    def call(self, s0, s1, mixing_weights, training=None):
        if len(mixing_weights) != self.num_nodes:
            raise ValueError(
                f"SearchCell {self.name}: expected {self.num_nodes} mixing-weight matrices, received {len(mixing_weights)}"
            )
        states = [self.preproc0(s0, training=training), self.preproc1(s1, training=training)]
        for i in range(self.num_nodes):
            node = None
            for j in range(i + 2):
                out = self.edge(i, j)(states[j], mixing_weights[i][j], training=training)
                node = out if node is None else node + out
            states.append(node)
        return keras.ops.concatenate(states[2:], axis=-1)

    def compute_output_shape(self, s0_shape, s1_shape, mixing_weights_shape=None):
        b, h, w, _ = tuple(s1_shape)
        if self.reduction:
            h = None if h is None else h // 2
            w = None if w is None else w // 2
        return (b, h, w, self.num_nodes * self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters, reduction=self.reduction, reduction_prev=self.reduction_prev,
            num_nodes=self.num_nodes,
        )
        return config
