"""Running ``.tflite`` models with LiteRT (``ai_edge_litert``): outputs, delegation, timing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

__all__ = ["TFLiteRunner", "is_fully_delegated", "time_invocations"]


class TFLiteRunner:
    """One interpreter over a model file or bytes; float32 (or quantised) single input/output.

    Static-batch models are run one image at a time; dynamic-batch models take the whole batch.
    XNNPACK is applied as LiteRT does by default.
    """

    def __init__(self, model, *, num_threads: int = 1, source: str | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.source = source or (str(model) if isinstance(model, (str, Path)) else "<tflite bytes>")
        kwargs = {"model_path": str(model)} if isinstance(model, (str, Path)) else {"model_content": bytes(model)}
        try:
            self.interpreter = Interpreter(num_threads=num_threads, **kwargs)
        except Exception as err:
            raise ValueError(f"{self.source}: cannot load the TFLite model ({type(err).__name__}: {err})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.source}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self.input, self.output = inputs[0], outputs[0]
        self.signature = [int(d) for d in self.input.get("shape_signature", self.input["shape"])]
        self.dynamic = self.signature[0] == -1
        self._batch = None
        if not self.dynamic:
            self.interpreter.allocate_tensors()
            self._batch = self.signature[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.signature[1:])

    def _quantize(self, x):
        dtype = self.input["dtype"]
        if dtype == np.float32:
            return x.astype(np.float32)
        scale, zero = self.input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)

    def _dequantize(self, y):
        if self.output["dtype"] == np.float32:
            return y
        scale, zero = self.output["quantization"]
        return (y.astype(np.float32) - zero) * np.float32(scale)

    def _invoke(self, batch):
        if self.dynamic and len(batch) != self._batch:
            self.interpreter.resize_tensor_input(self.input["index"], [len(batch), *self.input_shape], strict=True)
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], self._quantize(batch))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self.output["index"])).copy()

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Model outputs for ``inputs`` ``(N, *input_shape)`` (already in the model's input space)."""
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.shape[1:] != self.input_shape:
            raise ValueError(f"{self.source}: inputs of shape {inputs.shape[1:]}, the model takes {self.input_shape}")
        if self.dynamic:
            return self._invoke(inputs)
        step = self._batch
        if len(inputs) % step:
            raise ValueError(f"{self.source}: static batch {step} does not divide {len(inputs)} inputs")
        return np.concatenate([self._invoke(inputs[i : i + step]) for i in range(0, len(inputs), step)])


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
    if runner.dynamic:
        runner._invoke(np.zeros((1, *runner.input_shape), np.float32))
    x = np.random.default_rng(seed).uniform(-1, 1, (runner._batch, *runner.input_shape)).astype(np.float32)
    interp = runner.interpreter
    interp.set_tensor(runner.input["index"], runner._quantize(x))
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
