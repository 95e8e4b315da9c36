"""Primitive name -> layer factory: the only op table, used by the search and derived networks.

``build_op(primitive, filters, strides, affine, name)`` returns a fresh Keras layer implementing
one edge of a cell (spec §1.1-§1.2). ``filters`` is the cell width C (input and output channels of
the edge are both C).
"""

from __future__ import annotations

from typing import Callable

import keras

from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.layers.primitives import DWConv, FactorizedReduce, PoolBN, Zero


def _skip(filters: int, strides: int, affine: bool, name: str):
    if strides == 1:
        return keras.layers.Identity(name=name)
    return FactorizedReduce(filters, affine=affine, name=name)


OPS: dict[str, Callable[[int, int, bool, str], keras.layers.Layer]] = {
    "max_pool_3x3": lambda c, s, affine, name: PoolBN("max", strides=s, affine=affine, name=name),
    "avg_pool_3x3": lambda c, s, affine, name: PoolBN("avg", strides=s, affine=affine, name=name),
    "skip_connect": _skip,
    "dw_conv_3x3": lambda c, s, affine, name: DWConv(c, 3, strides=s, affine=affine, name=name),
    "dw_conv_5x5": lambda c, s, affine, name: DWConv(c, 5, strides=s, affine=affine, name=name),
    "dw_conv_7x7": lambda c, s, affine, name: DWConv(c, 7, strides=s, affine=affine, name=name),
    "dw_conv_1x1": lambda c, s, affine, name: DWConv(c, 1, strides=s, affine=affine, name=name),
    "none": lambda c, s, affine, name: Zero(strides=s, name=name),
}

assert tuple(OPS) == PRIMITIVES, "OPS must list the primitives in the alpha column order"


def build_op(primitive: str, filters: int, strides: int, affine: bool, name: str) -> keras.layers.Layer:
    """Builds the layer for one cell edge."""
    try:
        factory = OPS[primitive]
    except KeyError:
        raise ValueError(f"unknown primitive {primitive!r}; expected one of {list(PRIMITIVES)}") from None
    return factory(filters, strides, affine, name)
