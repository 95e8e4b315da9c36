"""Keras export model -> ``.tflite`` bytes, one function per conversion mode.

Which tool each mode uses (measured in ``tflite/README.md``):

- ``fp32``: ``tf.lite.TFLiteConverter`` (the only converter for Keras 3 on TensorFlow), then
  :func:`~pocketnet_tf.export.fuse_prelu.fuse_prelus` (every PReLU one PRELU operator).
- ``fp16``: the converter with float16 weights (dequantised at load; float compute).
- ``dynamic``: the converter's dynamic-range quantisation (int8 weights, activations quantised
  on the fly), default; or the LiteRT Quantizer's ``dynamic_wi8_afp32`` recipe.
- ``int8``: the converter's full-integer post-training quantisation of the PReLU-rewritten graph
  (float32 input/output tensors, int8 inside), default; or the LiteRT Quantizer's
  ``static_wi8_ai8`` recipe on the fp32 model (which leaves LEAKY_RELU/PRELU float).
- ``int16x8``: the converter's 16-bit-activation mode on the PReLU-rewritten graph (float
  fallback allowed for ops without a 16x8 kernel), default; or the LiteRT Quantizer's
  ``static_wi8_ai16`` recipe. XNNPACK has no int16 kernels: this mode is for accuracy, not speed.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np

from pocketnet_tf.export.fuse_prelu import fuse_prelus

__all__ = ["MODES", "BACKENDS", "DEFAULT_BACKEND", "to_tflite"]

MODES = ("fp32", "fp16", "dynamic", "int8", "int16x8")
BACKENDS = ("converter", "litert_quantizer")
DEFAULT_BACKEND = {
    "fp32": "converter",
    "fp16": "converter",
    "dynamic": "converter",
    "int8": "converter",
    "int16x8": "converter",
}
NEEDS_CALIBRATION = ("int8", "int16x8")


@contextlib.contextmanager
def _quiet():
    """The converter and quantizer print progress to stdout; keep CLI output readable."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        yield buf


def _converter(model):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _fp32(model) -> bytes:
    with _quiet():
        return bytes(_converter(model).convert())


def _representative(calibration):
    def gen():
        for image in calibration:
            yield [np.asarray(image, dtype=np.float32)[None]]

    return gen


def _convert_with_converter(model, mode: str, calibration) -> bytes:
    import tensorflow as tf

    converter = _converter(model)
    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif mode == "int16x8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(calibration)
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    with _quiet():
        return bytes(converter.convert())


def _convert_with_litert_quantizer(model, mode: str, calibration) -> bytes:
    try:
        from litert_quantizer import quantizer, recipe
    except ImportError as err:  # pragma: no cover - optional dependency
        raise ValueError("the litert_quantizer backend needs `pip install litert-quantizer`") from err
    from ai_edge_litert.interpreter import Interpreter

    recipes = {"dynamic": recipe.dynamic_wi8_afp32, "int8": recipe.static_wi8_ai8, "int16x8": recipe.static_wi8_ai16}
    if mode not in recipes:
        raise ValueError(f"the litert_quantizer backend does not do mode {mode!r}; it does {sorted(recipes)}")
    float_model = _fp32(model)
    q = quantizer.Quantizer(bytearray(float_model), recipes[mode]())
    with _quiet():
        calibration_result = None
        if q.need_calibration:
            signatures = Interpreter(model_content=float_model).get_signature_list()
            key = next(iter(signatures))
            (input_name,) = signatures[key]["inputs"]
            data = {key: [{input_name: np.asarray(x, np.float32)[None]} for x in calibration]}
            calibration_result = q.calibrate(data, num_threads=1)
        result = q.quantize(calibration_result, enable_progress_report=False)
    return bytes(result.quantized_model)


def to_tflite(model, mode: str, *, calibration=None, backend: str | None = None) -> tuple[bytes, str]:
    """Converts a Keras export model (see :func:`rewrite.build_export_model`).

    Args:
      model: Keras model; its input takes exactly what ``calibration`` holds.
      mode: one of :data:`MODES`.
      calibration: for ``int8``/``int16x8``: float32 model inputs ``(N, H, W, 3)``.
      backend: ``converter`` or ``litert_quantizer``; default per :data:`DEFAULT_BACKEND`.

    Returns:
      ``(flatbuffer bytes, backend used)``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    backend = backend or DEFAULT_BACKEND[mode]
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if mode in NEEDS_CALIBRATION and (calibration is None or len(calibration) == 0):
        raise ValueError(f"mode {mode} needs calibration images (representative data)")
    if mode == "fp32":
        data, backend = _fp32(model), "converter"
    elif backend == "litert_quantizer":
        data = _convert_with_litert_quantizer(model, mode, calibration)
    else:
        data = _convert_with_converter(model, mode, calibration)
    # PReLUs the converter left as RELU/NEG/MUL/ADD chains (float graphs) become PRELU operators.
    data, _ = fuse_prelus(data)
    return data, backend


def op_histogram(tflite_bytes: bytes) -> dict[str, int]:
    """Builtin op name -> count in the main subgraph."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, str(builtin))
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def write_temp(tflite_bytes: bytes, directory) -> Path:
    fd, path = tempfile.mkstemp(suffix=".tflite", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(tflite_bytes)
    return Path(path)
