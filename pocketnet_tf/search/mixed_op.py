"""MixedOp: one edge of a search cell, a softmax-weighted sum over every primitive (spec §1.2)."""

from __future__ import annotations

import keras
from keras import ops

from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.ops import build_op


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class MixedOp(keras.layers.Layer):
    """The continuous relaxation of one cell edge (DARTS; PocketNet spec §1.2, MixedOp).

    Holds one instance of each primitive of :data:`~pocketnet_tf.genotypes.PRIMITIVES`, built by
    :func:`pocketnet_tf.ops.build_op` with ``affine=False`` batch norms as in the original search,
    and returns ``sum_i mixing_weights[i] * op_i(x)``. The mixing weights are the softmax of this
    edge's row of alpha; the search network computes them once per forward pass and passes them in,
    so this layer owns no architecture parameter.

    Args:
      filters: the cell width C (input and output channels of the edge).
      strides: 1, or 2 for an edge of a reduction cell that leaves a cell input.

    Call arguments:
      inputs: ``(batch, H, W, filters)``.
      mixing_weights: ``(len(PRIMITIVES),)`` non-negative weights (the softmax of alpha).
      training: batch-norm mode.

    Output: ``(batch, H / strides, W / strides, filters)``.
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise ValueError(f"MixedOp: filters must be a positive int, received {filters!r}")
        if strides not in (1, 2):
            raise ValueError(f"MixedOp: strides must be 1 or 2, received {strides!r}")
        self.filters = filters
        self.strides = strides
        self.candidates = [build_op(p, filters, strides, False, p) for p in PRIMITIVES]

    def build(self, input_shape):
        shape = tuple(input_shape)
        if shape[-1] != self.filters:
            raise ValueError(f"MixedOp {self.name}: expected {self.filters} input channels, received shape {shape}")
        for op in self.candidates:
            if not op.built:
                op.build(shape)
        self.built = True

    def call(self, inputs, mixing_weights, training=None):
        total = None
        for i, op in enumerate(self.candidates):
            term = mixing_weights[i] * op(inputs, training=training)
            total = term if total is None else total + term
        return total

    def compute_output_shape(self, input_shape):
        return self.candidates[-1].compute_output_shape(tuple(input_shape))

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides)
        return config


def softmax_rows(alpha):
    """Row-wise softmax over the primitives (the last axis) of an alpha matrix."""
    return ops.softmax(alpha, axis=-1)
