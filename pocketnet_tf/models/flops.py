"""Parameter and FLOP counting the way the PocketNet paper counts (spec §5).

The original counter hooks PyTorch *leaf* modules during one forward pass at batch 1. We do the
same: while the model runs once eagerly on a zero batch, every call of a leaf Keras layer is
recorded with its input and output shapes, then priced:

- Conv2D / DepthwiseConv2D: ``2 * kh * kw * C_in/groups * C_out * H_out * W_out`` (+ bias),
- Dense: ``2 * in * out`` (+ ``out`` for a bias),
- BatchNormalization: 2 per input element; PReLU / ReLU / activations: 1 per element,
- MaxPooling2D / AveragePooling2D: ``k*k`` per output element,
- not counted: padding, slicing, identity, zeros, add, concatenate, flatten, dropout (the
  PyTorch model has no such leaf modules, or the counter ignores them).

``macs`` counts plain multiply-accumulates of the convolutions and dense layers.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict

import keras
import numpy as np


@dataclasses.dataclass
class ModelCost:
    trainable_params: int
    non_trainable_params: int
    flops: int  # multiply-add counted as 2 (the paper's "FLOPs")
    macs: int
    breakdown: dict  # category -> flops

    @property
    def mflops(self) -> float:
        return self.flops / 1e6


def count_params(model) -> tuple[int, int]:
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable, non_trainable


def _shape(t):
    return tuple(int(d) for d in t.shape)


def _price(layer, in_shape, out_shape):
    """Returns (category, flops, macs) for one leaf call, or None if not counted."""
    L = keras.layers
    if isinstance(layer, L.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        mult = layer.depth_multiplier
        out_elems = int(np.prod(out_shape[1:]))
        macs = kh * kw * out_elems  # one input channel per output channel
        bias = out_elems if layer.use_bias else 0
        del mult
        return "depthwise", 2 * macs + bias, macs
    if isinstance(layer, L.Conv2D):
        kh, kw = layer.kernel_size
        cin = in_shape[-1] // layer.groups
        out_elems = int(np.prod(out_shape[1:]))
        macs = kh * kw * cin * out_elems
        bias = out_elems if layer.use_bias else 0
        return "conv", 2 * macs + bias, macs
    if isinstance(layer, L.Dense):
        macs = in_shape[-1] * layer.units * int(np.prod(in_shape[1:-1] or (1,)))
        bias = int(np.prod(out_shape[1:])) if layer.use_bias else 0
        return "dense", 2 * macs + bias, macs
    if isinstance(layer, L.BatchNormalization):
        return "batchnorm", 2 * int(np.prod(in_shape[1:])), 0
    if isinstance(layer, (L.PReLU, L.ReLU, L.LeakyReLU, L.Activation)):
        return "activation", int(np.prod(in_shape[1:])), 0
    if isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D)):
        ph, pw = layer.pool_size
        return "pool", ph * pw * int(np.prod(out_shape[1:])), 0
    return None


@contextlib.contextmanager
def _record_leaf_calls(records):
    original = keras.layers.Layer.__call__

    def recording_call(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if not self._layers and args and hasattr(args[0], "shape") and hasattr(out, "shape"):
            records.append((self, _shape(args[0]), _shape(out)))
        return out

    keras.layers.Layer.__call__ = recording_call
    try:
        yield
    finally:
        keras.layers.Layer.__call__ = original


def count_cost(model) -> ModelCost:
    """Counts parameters, paper FLOPs and MACs of ``model`` for one image (batch 1)."""
    shape = (1,) + tuple(int(d) for d in model.inputs[0].shape[1:])
    records: list = []
    with _record_leaf_calls(records):
        model(np.zeros(shape, np.float32), training=False)
    breakdown: dict = defaultdict(int)
    flops = macs = 0
    for layer, in_shape, out_shape in records:
        priced = _price(layer, in_shape, out_shape)
        if priced is None:
            continue
        cat, f, m = priced
        breakdown[cat] += f
        flops += f
        macs += m
    trainable, non_trainable = count_params(model)
    return ModelCost(trainable, non_trainable, flops, macs, dict(breakdown))
