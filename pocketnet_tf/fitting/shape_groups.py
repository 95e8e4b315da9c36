"""Element-wise arithmetic over many tensors, one op per shape instead of one per tensor.

An optimiser or the DARTS architect does the same element-wise arithmetic on every weight of a
network: the paper's search network has 1,532 weight tensors, so a three-op update traced per
tensor is 4,600 graph nodes -- seconds of tracing and of Grappler before the first step, for a
few megabytes of arithmetic. :class:`ShapeGroups` stacks the tensors of equal shape and dtype
(one ``Pack`` per group; that network has 46 distinct weight shapes), runs the arithmetic once
per group and unstacks the results in the original order. Element-wise results are bit-identical
to the per-tensor ones: the same operations run on the same elements.

A tensor whose static shape is not fully known is its own group and is never stacked.
"""

from __future__ import annotations

import tensorflow as tf


def _key(tensor):
    shape = tf.TensorShape(tensor.shape)
    dtype = tf.as_dtype(tensor.dtype)
    if not shape.is_fully_defined():
        return None
    return tuple(shape.as_list()), dtype


class ShapeGroups:
    """The grouping of a list of tensors (or variables) by static shape and dtype.

    Args:
      tensors: the reference list; every list later passed to :meth:`stack` or :meth:`map` must
        have the same length with the same shape and dtype at each position.
    """

    def __init__(self, tensors):
        self._size = len(tensors)
        groups: dict = {}
        singles = []
        for i, t in enumerate(tensors):
            key = _key(t)
            if key is None:
                singles.append([i])
            else:
                groups.setdefault(key, []).append(i)
        self._groups = list(groups.values()) + singles
        self._keys = [_key(tensors[g[0]]) for g in self._groups]

    def __len__(self):
        return len(self._groups)

    @property
    def groups(self) -> list:
        """Positions of each group, in the order of :meth:`stack`'s result."""
        return [list(g) for g in self._groups]

    def _check(self, tensors):
        if len(tensors) != self._size:
            raise ValueError(f"ShapeGroups: expected {self._size} tensors, received {len(tensors)}")

    def stack(self, tensors) -> list:
        """One tensor per group: the group's tensors stacked on a new first axis (a group of one
        keeps its tensor, with a leading axis of 1)."""
        self._check(tensors)
        return [tf.stack([tf.convert_to_tensor(tensors[i]) for i in group]) for group in self._groups]

    def unstack(self, stacked) -> list:
        """The inverse of :meth:`stack`: the tensors in the original order."""
        if len(stacked) != len(self._groups):
            raise ValueError(f"ShapeGroups: expected {len(self._groups)} groups, received {len(stacked)}")
        out = [None] * self._size
        for group, value in zip(self._groups, stacked):
            for i, t in zip(group, tf.unstack(value, num=len(group))):
                out[i] = t
        return out

    def map(self, fn, *lists) -> list:
        """``[fn(*args) for args in zip(*lists)]`` computed once per group on stacked tensors.
        ``fn`` must be element-wise (broadcasting scalars only)."""
        stacked = [self.stack(values) for values in lists]
        return self.unstack([fn(*args) for args in zip(*stacked)])

    def sum_of_squares(self, tensors, dtype=None):
        """``sum_i ||tensors[i]||^2``, accumulated in ``dtype`` (default: the tensors' own)."""
        return self.sum_of_squares_stacked(self.stack(tensors), dtype)

    @staticmethod
    def sum_of_squares_stacked(stacked, dtype=None):
        """:meth:`sum_of_squares` of tensors already stacked by :meth:`stack`."""
        terms = []
        for value in stacked:
            if dtype is not None:
                value = tf.cast(value, dtype)
            terms.append(tf.reduce_sum(tf.square(value)))
        if not terms:
            return tf.constant(0.0, dtype or tf.float32)
        return tf.add_n(terms) if len(terms) > 1 else terms[0]
