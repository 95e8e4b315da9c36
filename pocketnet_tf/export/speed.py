"""How fast a converted model runs on *this* machine, and what the CPU offers.

The int8/fp32 latency ratio depends on the CPU more than on the model: the same PocketNetS-128
int8 bundle ran at 1.94x the fp32 latency on a 2-core AMD Zen 3 without AVX-512/VNNI and at
0.97x on a Zen 5 with AVX-512 VNNI (tflite/README.md). So ``convert`` measures the ratio where it
runs and reports it with the CPU features that explain it (:func:`cpu_features`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

__all__ = ["CPU_FEATURES", "cpu_features", "format_cpu", "latency_vs_fp32", "round_robin_latency"]

#: Instruction-set features that decide int8/bf16 kernel speed: ``label -> /proc/cpuinfo flag``
#: (x86 ``flags``; ARM ``Features``: ``asimddp`` is the int8 dot product, ``i8mm`` int8 matmul).
CPU_FEATURES = {
    "AVX2": "avx2", "FMA": "fma", "AVX-512F": "avx512f", "AVX512-VNNI": "avx512_vnni", "AVX-VNNI": "avx_vnni",
    "AVX512-BF16": "avx512_bf16", "AVX512-FP16": "avx512_fp16", "AMX-INT8": "amx_int8",
    "NEON dot-product": "asimddp", "I8MM": "i8mm",
}


def cpu_features(cpuinfo="/proc/cpuinfo") -> dict:
    """``{"model": str|None, "logical_cpus": int, "features": {label: bool}}``; features are
    ``None`` where ``cpuinfo`` cannot be read (not Linux)."""
    model, flags = None, None
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = None
    if text is not None:
        flags = set()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "cpu model") and model is None:
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    features = {label: (None if flags is None else flag in flags) for label, flag in CPU_FEATURES.items()}
    return {"model": model, "logical_cpus": os.cpu_count(), "features": features}


def format_cpu(info: dict) -> str:
    """One line: model, CPU count and which of the features are present."""
    have = [k for k, v in info["features"].items() if v]
    lacking = [k for k, v in info["features"].items() if v is False and k not in ("NEON dot-product", "I8MM")]
    return (f"{info['model'] or 'unknown CPU'}, {info['logical_cpus']} logical CPUs; has: {', '.join(have) or 'none'}; "
            f"lacks: {', '.join(lacking) or 'none'}")


def round_robin_latency(models, *, num_threads: int = 1, runs: int = 20, warmup: int = 3, seed: int = 0) -> list[dict]:
    """Per model (path or bytes, static batch): min and median ms of one invocation, the models
    timed in turn so that load from other processes hits them alike."""
    from pocketnet_tf.export.runtime import TFLiteRunner

    runners = [TFLiteRunner(m, num_threads=num_threads) for m in models]
    rng = np.random.default_rng(seed)
    for r in runners:
        r.set_input(rng.uniform(-1, 1, (r.batch or 1, *r.input_shape)).astype(np.float32))
        for _ in range(warmup):
            r.interpreter.invoke()
    times = [[] for _ in runners]
    for _ in range(runs):
        for i, r in enumerate(runners):
            start = time.perf_counter()
            r.interpreter.invoke()
            times[i].append(time.perf_counter() - start)
    out = []
    for t in times:
        t = np.asarray(t) * 1e3
        out.append({"min_ms": round(float(t.min()), 3), "median_ms": round(float(np.median(t)), 3)})
    return out


def latency_vs_fp32(export_model, tflite_bytes: bytes, mode: str, *, runs: int = 20, num_threads: int = 1) -> dict:
    """Latency of the converted model against an fp32 conversion of the same export graph, timed
    here (LiteRT + XNNPACK), with the CPU features beside it."""
    from pocketnet_tf.export import quantize

    reference = tflite_bytes if mode == "fp32" else quantize.to_tflite(export_model, "fp32")[0]
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    converted, fp32 = round_robin_latency([tflite_bytes, reference], num_threads=num_threads, runs=runs)
    return {
        "mode": mode,
        "num_threads": num_threads,
        "runs": runs,
        "converted_ms": converted,
        "fp32_ms": fp32,
        "ratio_min": round(converted["min_ms"] / fp32["min_ms"], 3),
        "ratio_median": round(converted["median_ms"] / fp32["median_ms"], 3),
        "load_average": None if load is None else [round(v, 2) for v in load],
        "cpu": cpu_features(),
    }
