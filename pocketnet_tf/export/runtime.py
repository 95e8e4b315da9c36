"""Running ``.tflite`` models with LiteRT (``ai_edge_litert``): the one runner, delegation, timing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["TFLiteRunner", "is_fully_delegated", "load_interpreter", "quantization_params", "time_invocations"]


def quantization_params(detail) -> tuple[float, int]:
    """``(scale, zero_point)`` of an interpreter tensor detail; ``(0.0, 0)`` when unquantised.

    Raises:
      ValueError: a per-channel quantised tensor (not supported as a model input/output).
    """
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []))
    zeros = np.asarray(params.get("zero_points", []))
    if scales.size > 1:
        raise ValueError(f"per-channel quantised tensor {detail.get('name')!r} is not supported as model input/output")
    if scales.size == 1:
        return float(scales[0]), int(zeros[0]) if zeros.size else 0
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def load_interpreter(model, *, num_threads: int | None = 1, source: str, what: str = "TFLite model"):
    """An ``ai_edge_litert`` interpreter over a model file or bytes (XNNPACK as LiteRT applies it
    by default); a load failure becomes a ValueError naming ``source``."""
    from ai_edge_litert.interpreter import Interpreter

    kwargs = {"model_path": str(model)} if isinstance(model, (str, Path)) else {"model_content": bytes(model)}
    try:
        return Interpreter(num_threads=num_threads, **kwargs)
    except Exception as err:  # the runtime raises bare RuntimeError/ValueError
        raise ValueError(f"{source}: cannot load the {what} ({type(err).__name__}: {err})") from None


class TFLiteRunner:
    """The one LiteRT runner: one interpreter over a model file or bytes with a single input.

    Used by export validation and bundles, the ``.tflite`` embedder of evaluation, the face
    pipeline's bundle embedder and the BlazeFace detector. Static-batch models are run a static
    batch at a time; dynamic-batch models take the whole batch. An int8/uint8 input is quantised
    with the tensor's ``(scale, zero_point)`` (a uint8 input without quantisation parameters takes
    raw pixels, rounded); int8/uint8 outputs are dequantised.

    Args:
      model: a ``.tflite`` path or the model's bytes.
      num_threads: interpreter threads (None: the runtime's default).
      source: the name used in error messages (default: the path).
      what: what the model is, for error messages ("BlazeFace model").
      num_outputs: the required number of outputs; None accepts any (see :meth:`invoke`).
    """

    def __init__(self, model, *, num_threads: int | None = 1, source: str | None = None, what: str = "TFLite model",
                 num_outputs: int | None = 1):
        self.source = source or (str(model) if isinstance(model, (str, Path)) else "<tflite bytes>")
        self.interpreter = load_interpreter(model, num_threads=num_threads, source=self.source, what=what)
        inputs, self.outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or (num_outputs is not None and len(self.outputs) != num_outputs):
            expected = "any number of" if num_outputs is None else str(num_outputs)
            raise ValueError(f"{self.source}: expected one input and {expected} output(s), got {len(inputs)} "
                             f"and {len(self.outputs)}")
        self.input, self.output = inputs[0], self.outputs[0]
        self.signature = [int(d) for d in self.input.get("shape_signature", self.input["shape"])]
        self.dynamic = self.signature[0] == -1
        self.input_dtype = np.dtype(self.input["dtype"])
        self.input_scale, self.input_zero = quantization_params(self.input)
        self.raw_uint8_input = self.input_dtype == np.uint8 and self.input_scale == 0.0
        self.batch = int(self.input["shape"][0]) if self.dynamic else self.signature[0]
        self.interpreter.allocate_tensors()

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.signature[1:])

    @property
    def output_names(self) -> list[str]:
        return [d["name"] for d in self.outputs]

    def quantize(self, x) -> np.ndarray:
        """``x`` in the model's input space as the input tensor's dtype."""
        if self.input_dtype == np.float32:
            return np.asarray(x, dtype=np.float32)
        info = np.iinfo(self.input_dtype)
        if self.raw_uint8_input:
            values = np.round(x)
        elif self.input_scale > 0:
            values = np.round(x / self.input_scale) + self.input_zero
        else:
            raise ValueError(f"{self.source}: {self.input_dtype} input without quantisation parameters")
        return np.clip(values, info.min, info.max).astype(self.input_dtype)

    def dequantize(self, y, detail) -> np.ndarray:
        """Output tensor ``y`` of ``detail`` as float32."""
        if np.dtype(detail["dtype"]) == np.float32:
            return y
        scale, zero = quantization_params(detail)
        if scale <= 0:
            raise ValueError(f"{self.source}: {np.dtype(detail['dtype'])} output without quantisation parameters")
        return (y.astype(np.float32) - zero) * np.float32(scale)

    def set_input(self, batch) -> None:
        """Feeds one batch (resizing a dynamic-batch model to it)."""
        if self.dynamic and len(batch) != self.batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *self.input_shape], strict=True)
            self.interpreter.allocate_tensors()
            self.batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], self.quantize(batch))

    def invoke(self, batch) -> list[np.ndarray]:
        """Every output (in :attr:`outputs` order, dequantised, copied) for one batch."""
        self.set_input(batch)
        self.interpreter.invoke()
        return [self.dequantize(self.interpreter.get_tensor(d["index"]), d).copy() for d in self.outputs]

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """The first output for ``inputs`` ``(N, *input_shape)`` (already in the model's input space)."""
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.shape[1:] != self.input_shape:
            raise ValueError(f"{self.source}: inputs of shape {inputs.shape[1:]}, the model takes {self.input_shape}")
        if self.dynamic:
            return self.invoke(inputs)[0]
        step = self.batch
        if len(inputs) % step:
            raise ValueError(f"{self.source}: static batch {step} does not divide {len(inputs)} inputs")
        return np.concatenate([self.invoke(inputs[i : i + step])[0] for i in range(0, len(inputs), step)])


def is_fully_delegated(model_path) -> bool | None:
    """Whether LiteRT's CompiledModel runs every op of the graph on its accelerator (XNNPACK on
    CPU); ``None`` if the CompiledModel API cannot load the model."""
    import os
    import sys

    # CompiledModel logs every accelerator/plugin it tries (GPU, NPU, OpenVINO) to fd 2.
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        from ai_edge_litert.compiled_model import CompiledModel

        return bool(CompiledModel.from_file(str(model_path)).is_fully_accelerated())
    except Exception:  # noqa: BLE001 - an informational probe
        return None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def time_invocations(model_path, *, num_threads: int = 1, runs: int = 50, warmup: int = 5, seed: int = 0) -> dict:
    """Latency of one invocation (ms) with XNNPACK: median, min, p90 over ``runs``."""
    runner = TFLiteRunner(model_path, num_threads=num_threads)
    batch = 1 if runner.dynamic else runner.batch
    runner.set_input(np.random.default_rng(seed).uniform(-1, 1, (batch, *runner.input_shape)).astype(np.float32))
    interp = runner.interpreter
    for _ in range(warmup):
        interp.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interp.invoke()
        times.append(time.perf_counter() - start)
    t = np.asarray(times) * 1e3
    return {
        "median_ms": round(float(np.median(t)), 3),
        "min_ms": round(float(t.min()), 3),
        "p90_ms": round(float(np.percentile(t, 90)), 3),
        "runs": runs,
        "num_threads": num_threads,
    }
