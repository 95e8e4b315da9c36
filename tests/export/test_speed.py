"""pocketnet_tf.export.speed: CPU feature detection and the on-machine latency ratio."""

from __future__ import annotations

import numpy as np

from pocketnet_tf.export import quantize, speed
from tests import factory

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu sse2 avx fma avx2 bmi2 sha_ni
processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
flags\t\t: fpu sse2 avx fma avx2 bmi2 sha_ni
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
"""


def test_cpu_features_from_cpuinfo(tmp_path):
    (tmp_path / "zen3").write_text(ZEN3)
    info = speed.cpu_features(tmp_path / "zen3")
    assert info["model"] == "AMD EPYC 7B13 64-Core Processor"
    f = info["features"]
    assert f["AVX2"] and f["FMA"]
    assert not any(f[k] for k in ("AVX-512F", "AVX512-VNNI", "AVX-VNNI", "AVX512-BF16", "AMX-INT8", "NEON dot-product"))
    line = speed.format_cpu(info)
    assert "has: AVX2, FMA;" in line and "lacks: AVX-512F, AVX512-VNNI" in line
    (tmp_path / "arm").write_text(ARM)
    arm = speed.cpu_features(tmp_path / "arm")["features"]
    assert arm["NEON dot-product"] and not arm["I8MM"] and not arm["AVX2"]
    missing = speed.cpu_features(tmp_path / "none")
    assert missing["model"] is None and set(missing["features"].values()) == {None}


def test_latency_vs_fp32_times_both_models():
    model = factory.tiny_plain(seed=1)
    int8, _ = quantize.to_tflite(model, "int8", calibration=np.random.default_rng(0).uniform(
        -1, 1, (4, *model.inputs[0].shape[1:])).astype(np.float32))
    out = speed.latency_vs_fp32(model, int8, "int8", runs=5)
    assert out["runs"] == 5 and out["num_threads"] == 1 and out["mode"] == "int8"
    for key in ("converted_ms", "fp32_ms"):
        assert 0 < out[key]["min_ms"] <= out[key]["median_ms"]
    assert out["ratio_min"] == round(out["converted_ms"]["min_ms"] / out["fp32_ms"]["min_ms"], 3)
    assert set(out["cpu"]["features"]) == set(speed.CPU_FEATURES)
    # fp32 is its own reference: no second conversion, the same bytes timed twice.
    same = speed.latency_vs_fp32(None, int8, "fp32", runs=3)
    assert same["mode"] == "fp32" and same["converted_ms"]["min_ms"] > 0
