"""MixedOp: one edge of a search cell, a softmax-weighted sum over every primitive (spec §1.2)."""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf
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
        shared = getattr(self, "_shared_edge_functions", None)
        if shared is not None and not shared.tracing and tf.inside_function():
            return shared(self, inputs, mixing_weights, training)
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


def _current_value(variable):
    """The variable's value in the current (stateless) scope, in the variable's own dtype: the
    shared function maps it back onto a variable of that dtype. (Under mixed precision
    ``variable.value`` is autocast to the compute dtype; the round trip back is exact and the
    prototype's layer autocasts it again, so the forward pass is bit-identical.)"""
    value = tf.convert_to_tensor(variable.value)
    if value.dtype != tf.as_dtype(variable.dtype):
        value = tf.cast(value, variable.dtype)
    return value


#: Traced once, called from many graphs, instantiated and optimised once by the runtime.
_NOINLINE = dict(autograph=False, experimental_attributes={"_noinline": True})


class SharedEdgeFunctions:
    """One traced, non-inlined forward and backward function per distinct edge shape, shared by
    every edge of that shape, with the edge's activations recomputed in the backward pass.

    The paper's supernet has 112 mixed edges but only 7 distinct ones (cell width, stride, input
    size), and a second-order step evaluates the network five times (virtual step, unrolled
    validation loss, w+, w-, weight step), each with its backward pass. Traced inline that is 560
    forward and 560 backward copies of ~100-op edge graphs, which Grappler then optimises as one
    graph: minutes before the first step on CPU, and gigabytes of graph. Here each distinct edge
    is traced once forward and once backward, as functions of its inputs, its mixing weights and
    its variables' values, marked ``_noinline`` so that the runtime instantiates and optimises
    each once instead of Grappler inlining a copy into every call site.

    Each edge is one differentiable op (``tf.custom_gradient``): its forward function returns
    only the edge's output, and its backward function recomputes the edge's forward pass before
    differentiating it. Nothing inside an edge (8 candidates, their batch norms) is kept between
    the forward and the backward pass -- only the edges' inputs -- at the price of one more
    forward pass of every edge per backward pass.

    The arithmetic is the edge's own: the functions run a *prototype* edge of the same
    configuration (the first edge that asked for it) under a ``keras.StatelessScope`` mapping its
    variables to the caller's values; the new batch-norm moving statistics are returned and
    assigned to the caller's own variables (recorded, under an outer stateless scope). Used only
    inside a ``tf.function`` graph; eager calls run the edge directly.

    The passes that need only the alpha gradient (w+ and w-) run inside :meth:`constant_weights`:
    there a second backward function of the same shape skips the edge's weight gradients (a
    non-inlined function's unused outputs are not pruned); the forward function is the same.
    """

    def __init__(self):
        self._functions = {}
        self.tracing = False
        self._constant_weights = False

    @contextlib.contextmanager
    def constant_weights(self):
        """Within this block, edges give no gradient to their weights (only to their inputs and
        mixing weights): for passes that differentiate with respect to alpha alone."""
        previous, self._constant_weights = self._constant_weights, True
        try:
            yield
        finally:
            self._constant_weights = previous

    def _entry(self, op, training, constant):
        """``(forward, backward)`` of ``op``'s edge shape: one forward function per shape, and a
        backward function with and one without the weight gradients (``constant``)."""
        key = (type(op), op.filters, op.strides, op.dtype_policy.name, training)
        entry = self._functions.get(key)
        if entry is None:
            python_forward = self._forward_fn(op, training)
            entry = self._functions[key] = {"prototype": op, "python_forward": python_forward,
                                            "forward": tf.function(python_forward, **_NOINLINE)}
        prototype = entry["prototype"]
        if [tuple(v.shape) for v in prototype.variables] != [tuple(v.shape) for v in op.variables]:
            raise ValueError(f"MixedOp {op.name}: variables differ from the shared edge {prototype.name}'s")
        if ("backward", constant) not in entry:
            entry["backward", constant] = tf.function(self._backward_fn(entry["python_forward"], constant),
                                                      **_NOINLINE)
        return entry["forward"], entry["backward", constant]

    def __call__(self, op, inputs, mixing_weights, training):
        training = bool(training)
        constant = self._constant_weights
        forward, backward = self._entry(op, training, constant)
        trainable = [_current_value(v) for v in op.trainable_variables]
        non_trainable = [_current_value(v) for v in op.non_trainable_variables]
        output, updates = self._recomputing_call(forward, backward, inputs, mixing_weights, trainable,
                                                 non_trainable, constant)
        if training:
            for variable, value in zip(op.non_trainable_variables, updates):
                variable.assign(value)
        return output

    @staticmethod
    def _recomputing_call(forward, backward, inputs, mixing_weights, trainable, non_trainable, constant):
        """The edge as one differentiable op whose gradient recomputes the edge's forward pass
        (nothing but the edge's inputs is kept for the backward pass)."""
        count = len(trainable)
        # The new moving statistics leave through this list, not as outputs of the differentiable
        # op: no gradient (zeros) is ever made for them. (Graph mode only, where this runs.)
        updates = []

        @tf.custom_gradient
        def edge(x, weights, *values):
            output, new_statistics = forward(x, weights, list(values), non_trainable)
            updates.extend(new_statistics)

            def gradient(d_output):
                d_x, d_weights, d_values = backward(x, weights, list(values), non_trainable, d_output)
                return [d_x, d_weights] + (list(d_values) if not constant else [None] * count)

            return output, gradient

        output = edge(inputs, mixing_weights, *trainable)
        return output, updates

    def _forward_fn(self, prototype, training):
        def forward(inputs, mixing_weights, trainable, non_trainable):
            mapping = list(zip(prototype.trainable_variables, trainable))
            mapping += list(zip(prototype.non_trainable_variables, non_trainable))
            self.tracing = True
            try:
                with keras.StatelessScope(state_mapping=mapping) as scope:
                    output = prototype(inputs, mixing_weights, training=training)
            finally:
                self.tracing = False
            updates = [scope.get_current_value(v) for v in prototype.non_trainable_variables]
            return output, [old if new is None else new for old, new in zip(non_trainable, updates)]

        return forward

    @staticmethod
    def _backward_fn(forward, constant_weights):
        def backward(inputs, mixing_weights, trainable, non_trainable, d_output):
            sources = [inputs, mixing_weights] + ([] if constant_weights else list(trainable))
            with tf.GradientTape() as tape:
                tape.watch(sources)
                output, _ = forward(inputs, mixing_weights, trainable, non_trainable)
            grads = tape.gradient(output, sources, output_gradients=d_output,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return grads[0], grads[1], grads[2:]

        return backward


def softmax_rows(alpha):
    """Row-wise softmax over the primitives (the last axis) of an alpha matrix."""
    return ops.softmax(alpha, axis=-1)
