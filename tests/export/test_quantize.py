"""Conversion per mode: the TFLite model agrees with Keras within the mode's tolerance."""

import numpy as np
import pytest

from pocketnet_tf.data.preprocess import normalize
from pocketnet_tf.export import quantize, rewrite, validate
from pocketnet_tf.export.runtime import TFLiteRunner, is_fully_delegated
from tests import factory

# Minimum per-image cosine to the Keras embedding on 8 held-out random images, per mode, for the
# tiny plain model. fp32 is the same arithmetic up to kernel rounding; fp16 rounds weights to 11
# significant bits (~5e-4 relative); dynamic/int8 quantise to 8 bits (observed 0.998+ on this
# model), int16x8 keeps 16-bit activations (observed 0.9999+).
MIN_COSINE = {"fp32": 0.999999, "fp16": 0.9999, "dynamic": 0.99, "int8": 0.98, "int16x8": 0.999}


@pytest.fixture(scope="module")
def plain_model():
    return factory.tiny_plain(seed=5)


@pytest.mark.parametrize("mode", quantize.MODES)
def test_conversion_agrees_with_keras(plain_model, mode, tmp_path):
    calibration = normalize(factory.pixels(16, seed=10))
    held_out = factory.pixels(8, seed=11)
    prelu = "fold" if mode in ("int8", "int16x8") else "none"
    export, _ = rewrite.build_export_model(plain_model, prelu=prelu)
    data, backend = quantize.to_tflite(export, mode, calibration=calibration)
    assert backend == quantize.DEFAULT_BACKEND[mode]
    ref = rewrite.reference_outputs(plain_model, held_out)
    out = TFLiteRunner(data).run(normalize(held_out))
    agreement = validate.embedding_agreement(ref, out)
    assert agreement["cosine_min"] >= MIN_COSINE[mode], agreement
    ops = quantize.op_histogram(data)
    if mode in ("int8", "int16x8"):
        assert "PRELU" not in ops
    if mode == "int8":
        path = tmp_path / "m.tflite"
        path.write_bytes(data)
        assert is_fully_delegated(path) is True
        assert ops.get("DEQUANTIZE", 0) == 1 and ops.get("QUANTIZE", 0) >= 1  # int8 inside, float at the edges
    if mode == "fp32":
        assert ops.get("PRELU") == 3  # native PReLU kept for float graphs


def test_plain_int8_with_prelu_falls_back(plain_model, tmp_path):
    """Why the rewrite exists: int8 PRELU is not an XNNPACK op, so the graph is split."""
    export, _ = rewrite.build_export_model(plain_model, prelu="none")
    data, _ = quantize.to_tflite(export, "int8", calibration=normalize(factory.pixels(8, seed=10)))
    assert quantize.op_histogram(data).get("PRELU") == 3
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert is_fully_delegated(path) is False


def test_litert_quantizer_backend_runs(plain_model):
    export, _ = rewrite.build_export_model(plain_model)
    data, backend = quantize.to_tflite(export, "dynamic", backend="litert_quantizer")
    assert backend == "litert_quantizer"
    held_out = factory.pixels(4, seed=12)
    agreement = validate.embedding_agreement(rewrite.reference_outputs(plain_model, held_out),
                                             TFLiteRunner(data).run(normalize(held_out)))
    assert agreement["cosine_min"] >= MIN_COSINE["dynamic"]


def test_calibration_required_and_bad_mode(plain_model):
    export, _ = rewrite.build_export_model(plain_model)
    with pytest.raises(ValueError, match="calibration"):
        quantize.to_tflite(export, "int8")
    with pytest.raises(ValueError, match="mode must be"):
        quantize.to_tflite(export, "int4")
    with pytest.raises(ValueError, match="backend must be"):
        quantize.to_tflite(export, "fp16", backend="tflite")


@pytest.mark.slow
def test_tiny_pocketnet_int8_fold_is_fully_delegated_and_accurate(tmp_path):
    model = factory.tiny_pocketnet(seed=1)
    export, info = rewrite.build_export_model(model, prelu="fold")
    data, _ = quantize.to_tflite(export, "int8", calibration=normalize(factory.pixels(16, seed=20)))
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert "PRELU" not in quantize.op_histogram(data)
    assert is_fully_delegated(path) is True
    held_out = factory.pixels(8, seed=21)
    agreement = validate.embedding_agreement(rewrite.reference_outputs(model, held_out),
                                             TFLiteRunner(path).run(normalize(held_out)))
    assert agreement["cosine_min"] >= MIN_COSINE["int8"], agreement


@pytest.mark.parametrize("mode", ["fp32", "fp16"])
def test_every_prelu_of_a_pocketnet_is_one_prelu_operator(mode, tmp_path, monkeypatch):
    """Cell states feed several PReLUs; the converter alone leaves those as RELU/NEG/MUL/ADD chains."""
    from pocketnet_tf.export.fuse_prelu import fuse_prelus

    model = factory.tiny_pocketnet(seed=3)
    factory.randomize_weights(model, seed=4, prelu_slopes=True, calibrate_batchnorm=True)
    export, _ = rewrite.build_export_model(model, prelu="none")
    # The converter's own output, as to_tflite receives it before fusing (one conversion, not two).
    converted = []
    convert = quantize._fp32 if mode == "fp32" else quantize._convert_with_converter
    monkeypatch.setattr(quantize, convert.__name__, lambda *args: converted.append(convert(*args)) or converted[-1])
    data, _ = quantize.to_tflite(export, mode)
    [raw] = converted
    raw_ops = quantize.op_histogram(raw)
    assert raw_ops.get("NEG", 0) > 0, raw_ops  # the converter's own output still has unfused chains
    ops = quantize.op_histogram(data)
    assert ops.get("PRELU") == rewrite.count_prelus(model), ops
    assert "NEG" not in ops and "RELU" not in ops, ops
    held_out = factory.pixels(8, seed=12)
    fused = TFLiteRunner(data).run(normalize(held_out))
    unfused = TFLiteRunner(raw).run(normalize(held_out))
    np.testing.assert_allclose(fused, unfused, rtol=1e-6, atol=1e-6)
    agreement = validate.embedding_agreement(rewrite.reference_outputs(model, held_out), fused)
    assert agreement["cosine_min"] >= MIN_COSINE[mode], agreement
    assert fuse_prelus(data) == (data, 0)  # nothing left to fuse
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    assert is_fully_delegated(path) is True  # every PRELU (and the rest) runs on XNNPACK
