"""Turns the PReLUs the TFLite converter left unfused into single PRELU operators.

The converter recognises Keras' ``relu(x) + (-alpha) * relu(-x)`` as one PRELU only when the
intermediate results have no other users. In PocketNet a cell state feeds two or three
operations, each opening with its own PReLU; the converter's common-subexpression pass then
shares ``RELU(x)``, ``NEG(x)`` and ``RELU(NEG(x))`` between them and the pattern no longer
matches: a converted PocketNetS-128 keeps 35 of its PReLUs as RELU/NEG/RELU/MUL/ADD chains
(five passes over the activations instead of one). :func:`fuse_prelus` finds every

    ADD(RELU(x), MUL(RELU(NEG(x)), c))        (either operand order; c constant)

with float32 ``x`` and no fused activation, replaces the ADD by ``PRELU(x, -c)`` and removes
the operators nothing reads any more. ``prelu(x) = relu(x) - alpha * relu(-x)`` exactly, so the
result is the same function (bit-for-bit in float32 up to the order of two roundings).
Quantized graphs have no such chains (their PReLUs are rewritten before conversion) and come
back unchanged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fuse_prelus"]


def _schema():
    from ai_edge_litert import schema_py_generated as schema

    return schema


def _opcode_names(model, schema):
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "") for c in model.operatorCodes]


def _opcode_index(model, schema, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _constant(model, graph, schema, names, producer, tensor_index):
    """float32 value of a constant tensor (also through a DEQUANTIZE of fp16 weights), or None."""
    tensor = graph.tensors[tensor_index]
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    dtypes = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16}
    if data is not None and len(data) and tensor.type in dtypes:
        shape = tuple(tensor.shape) if tensor.shape is not None else ()
        return np.frombuffer(bytes(bytearray(data)), dtypes[tensor.type]).astype(np.float32).reshape(shape)
    p = producer.get(tensor_index)
    if p is not None and names[graph.operators[p].opcodeIndex] == "DEQUANTIZE":
        return _constant(model, graph, schema, names, producer, graph.operators[p].inputs[0])
    return None


def _no_activation(op) -> bool:
    options = op.builtinOptions
    return options is None or getattr(options, "fusedActivationFunction", 0) == 0


class _Subgraph:
    """One subgraph of a model being rewritten, with the producer of each tensor, for matching
    operator chains."""

    def __init__(self, model, graph, schema):
        self.model, self.graph, self.schema = model, graph, schema
        self.names = _opcode_names(model, schema)
        self.producer = {}
        for i, op in enumerate(graph.operators):
            for t in op.outputs:
                self.producer[t] = i
        self.prelu_code = None

    def made_by(self, tensor_index, name):
        """The operator ``name`` (without fused activation) producing ``tensor_index``, or None."""
        p = self.producer.get(tensor_index)
        if p is None:
            return None
        op = self.graph.operators[p]
        return op if self.names[op.opcodeIndex] == name and _no_activation(op) else None

    def prelu_pattern(self, add):
        """``(x, alpha)`` when ``add`` computes ``ADD(RELU(x), MUL(RELU(NEG(x)), c))`` (either
        operand order) for float32 ``x`` and an ``alpha = -c`` that broadcasts to the output; else None."""
        if self.names[add.opcodeIndex] != "ADD" or not _no_activation(add) or len(add.inputs) != 2:
            return None
        for relu_in, mul_in in (add.inputs, add.inputs[::-1]):
            relu, mul = self.made_by(relu_in, "RELU"), self.made_by(mul_in, "MUL")
            if relu is None or mul is None:
                continue
            x = relu.inputs[0]
            if self.graph.tensors[x].type != self.schema.TensorType.FLOAT32:
                continue
            scale = self._negative_part_scale(mul, x)
            if scale is None:
                continue
            alpha = -scale
            out_shape = tuple(self.graph.tensors[add.outputs[0]].shape)
            if alpha.ndim > len(out_shape) or np.broadcast_shapes(alpha.shape, out_shape) != out_shape:
                continue
            return x, alpha
        return None

    def _negative_part_scale(self, mul, x):
        """The constant ``c`` when ``mul`` is ``MUL(RELU(NEG(x)), c)`` (either order), else None."""
        for neg_relu_in, const_in in (mul.inputs, mul.inputs[::-1]):
            neg_relu = self.made_by(neg_relu_in, "RELU")
            neg = self.made_by(neg_relu.inputs[0], "NEG") if neg_relu is not None else None
            if neg is not None and neg.inputs[0] == x:
                scale = _constant(self.model, self.graph, self.schema, self.names, self.producer, const_in)
                if scale is not None:
                    return scale
        return None

    def replace_by_prelu(self, add, x, alpha) -> None:
        """Turns ``add`` into ``PRELU(x, alpha)`` with ``alpha`` as a new constant tensor."""
        model, graph, schema = self.model, self.graph, self.schema
        buffer = schema.BufferT()
        buffer.data = np.ascontiguousarray(alpha, np.float32).tobytes()
        model.buffers.append(buffer)
        tensor = schema.TensorT()
        tensor.shape = np.asarray(alpha.shape, np.int32)
        tensor.type = schema.TensorType.FLOAT32
        tensor.buffer = len(model.buffers) - 1
        tensor.name = (graph.tensors[add.outputs[0]].name or b"prelu") + b"/alpha"
        graph.tensors.append(tensor)
        if self.prelu_code is None:
            self.prelu_code = _opcode_index(model, schema, schema.BuiltinOperator.PRELU)
            self.names = _opcode_names(model, schema)  # the rewritten operator's name is looked up later
        add.opcodeIndex = self.prelu_code
        add.inputs = np.asarray([x, len(graph.tensors) - 1], np.int32)
        add.builtinOptionsType = schema.BuiltinOptions.NONE
        add.builtinOptions = None


def fuse_prelus(tflite_bytes: bytes) -> tuple[bytes, int]:
    """Returns ``(model bytes, number of PReLUs fused)``; the input itself if there are none."""
    from ai_edge_litert.tools import flatbuffer_utils

    schema = _schema()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    fused = 0
    for graph in model.subgraphs:
        subgraph = _Subgraph(model, graph, schema)
        for op in graph.operators:
            found = subgraph.prelu_pattern(op)
            if found is not None:
                subgraph.replace_by_prelu(op, *found)
                fused += 1
        _drop_dead_operators(graph)
    if not fused:
        return tflite_bytes, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fused


def _drop_dead_operators(graph) -> None:
    """Removes operators none of whose outputs is read by another operator or is a graph output."""
    while True:
        read = set(int(t) for t in graph.outputs)
        for op in graph.operators:
            read.update(int(t) for t in op.inputs if t >= 0)
        keep = [op for op in graph.operators if any(int(t) in read for t in op.outputs)]
        if len(keep) == len(graph.operators):
            return
        graph.operators = keep
