"""End to end through the library: convert -> validate -> metadata -> bundle, and the failure path."""

import json
import shutil

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.data.bin_file import write_bin
from pocketnet_tf.export import bundle, metadata
from pocketnet_tf.export.exporter import ExportConfig, ExportValidationError, run_export
from tests import factory
from tests.export.test_seal import reseal

BUNDLE_FILES = {"model.tflite", "metadata.json", "manifest.json", "golden", "report.json", "report.md"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    summary = factory.synthetic_faces(root)
    model = factory.tiny_plain(seed=2)
    model.save(root / "plain.keras")
    return {"root": root, "bin": summary["files"]["synth_val.bin"], "keras": root / "plain.keras", "model": model}


@pytest.fixture(scope="module")
def fp32_bundle(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "plain_fp32"
    report = run_export(ExportConfig(model=str(data["keras"]), mode="fp32", out=str(out), bin=(data["bin"],),
                                     num_validation=12, golden_count=3, far=0.1))
    return out, report


def test_bundle_contents_and_report(fp32_bundle, data):
    out, report = fp32_bundle
    assert {p.name for p in out.iterdir()} == BUNDLE_FILES
    assert report["passed"] and report["reasons"] == []
    assert report["agreement"]["images"] == 12 and report["agreement"]["cosine_min"] >= 0.999999
    # The verification block holds both models on the same set; fp32 gives the same accuracy.
    ver = report["verification"]["synth_val"]
    assert ver["keras"]["accuracy"] == pytest.approx(ver["tflite"]["accuracy"], abs=1e-9)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["model"]["sha256"] == metadata.sha256_file(out / "model.tflite")
    assert meta["model"]["size_bytes"] == (out / "model.tflite").stat().st_size
    assert meta["input"]["shape"] == [1, factory.EXPORT_SIZE, factory.EXPORT_SIZE, 3]
    assert meta["input"]["normalization"] == {"mean": preprocess.MEAN, "std": preprocess.STD}
    assert meta["output"] == {**meta["output"], "embedding_size": 16, "l2_normalized": False}
    # Alignment template = the one in preprocess, scaled to the model's input side.
    expected = preprocess.ARCFACE_TEMPLATE_112 * (factory.EXPORT_SIZE / 112)
    np.testing.assert_allclose(np.array(meta["alignment"]["template"]), expected, atol=1e-4)
    threshold = meta["verification"]
    assert threshold["far_target"] == 0.1 and threshold["far_measured"] <= 0.1
    assert threshold["impostor_pairs"] + threshold["genuine_pairs"] == 20


def test_metadata_round_trip_sidecar_equals_embedded(fp32_bundle):
    out, _ = fp32_bundle
    sidecar = json.loads((out / "metadata.json").read_text())
    embedded = metadata.read_embedded_metadata(out / "model.tflite")
    assert embedded == metadata.embedded_view(sidecar)
    assert embedded["model"]["sha256"] is None and embedded["model"]["size_bytes"] is None
    # The seal is the only other difference: the manifest hashes the model, so the model cannot hold it.
    assert set(sidecar) - set(embedded) == {"bundle"}
    assert {k: v for k, v in embedded.items() if k != "model"} == {
        k: v for k, v in sidecar.items() if k not in ("model", "bundle")}


def test_eval_embedder_reads_the_bundle_normalisation(fp32_bundle, data):
    from pocketnet_tf.eval.embedders import TFLiteEmbedder

    out, _ = fp32_bundle
    embedder = TFLiteEmbedder(out / "model.tflite")
    assert embedder.normalization == (preprocess.MEAN, preprocess.STD)
    pixels = factory.pixels(2, seed=3)
    np.testing.assert_allclose(embedder.embed(pixels), np.asarray(data["model"](preprocess.normalize(pixels))),
                               rtol=0, atol=1e-4)


def test_verify_bundle_passes_on_fresh_bundle(fp32_bundle):
    out, _ = fp32_bundle
    result = bundle.verify_bundle(out)
    assert result["passed"] and len(result["cases"]) == 3
    assert all(case["bit_exact"] for case in result["cases"])


def _copy(out, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(out, target)
    return target


def test_verify_bundle_fails_on_tampered_embedding(fp32_bundle, tmp_path):
    target = _copy(fp32_bundle[0], tmp_path)
    path = target / "golden" / "face_001.embedding.f32"
    values = np.frombuffer(path.read_bytes(), "<f4").copy()
    values[0] += 0.5 * np.abs(values).max()
    path.write_bytes(values.astype("<f4").tobytes())
    with pytest.raises(bundle.BundleError, match="face_001.embedding.f32"):
        bundle.verify_bundle(target)


def test_verify_bundle_fails_on_wrong_hash(fp32_bundle, tmp_path):
    target = _copy(fp32_bundle[0], tmp_path)
    meta = json.loads((target / "metadata.json").read_text())
    meta["model"]["sha256"] = "0" * 64
    (target / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(bundle.BundleError, match="sha256"):
        bundle.verify_bundle(target)


def test_verify_bundle_fails_on_replaced_model(fp32_bundle, tmp_path):
    target = _copy(fp32_bundle[0], tmp_path)
    with open(target / "model.tflite", "ab") as f:
        f.write(b"\0")
    with pytest.raises(bundle.BundleError, match="does not match"):
        bundle.verify_bundle(target)


def test_verify_bundle_fails_on_input_not_matching_image(fp32_bundle, tmp_path):
    target = _copy(fp32_bundle[0], tmp_path)
    path = target / "golden" / "face_000.input.f32"
    values = np.frombuffer(path.read_bytes(), "<f4").copy()
    values[:10] = 0.0
    path.write_bytes(values.astype("<f4").tobytes())
    with pytest.raises(bundle.BundleError, match="face_000.input.f32: .* does not match .*manifest.json"):
        bundle.verify_bundle(target)
    reseal(target)  # the seal made consistent again: the preprocessing check itself still refuses it
    with pytest.raises(bundle.BundleError, match="normalised as metadata.json says"):
        bundle.verify_bundle(target)


def test_black_calibration_fails_validation_and_writes_no_model(data, tmp_path):
    black = tmp_path / "black.bin"
    image = preprocess.encode_png(np.zeros((factory.EXPORT_SIZE, factory.EXPORT_SIZE, 3), np.uint8))
    write_bin(black, [image] * 40, [True, False] * 10)
    out = tmp_path / "out"
    config = ExportConfig(model=str(data["keras"]), mode="int8", out=str(out), representative=str(black),
                          validation_data=str(data["root"]), num_calibration=16, num_validation=12)
    with pytest.raises(ExportValidationError) as err:
        run_export(config)
    assert not err.value.report["passed"] and any("cosine" in r for r in err.value.report["reasons"])
    assert {p.name for p in out.iterdir()} == {"failed_report.json", "failed_report.md"}
    failed = json.loads((out / "failed_report.json").read_text())
    assert failed["reasons"] == err.value.report["reasons"]
    assert not list(tmp_path.glob(".out.*"))  # no temporary left behind


def test_failed_conversion_keeps_an_earlier_bundle(fp32_bundle, data, tmp_path):
    target = _copy(fp32_bundle[0], tmp_path)
    before = (target / "model.tflite").read_bytes()
    config = ExportConfig(model=str(data["keras"]), mode="fp32", out=str(target), bin=(data["bin"],),
                          num_validation=4, min_cosine=1.5)  # impossible threshold
    with pytest.raises(ExportValidationError):
        run_export(config)
    assert (target / "model.tflite").read_bytes() == before
    assert (target / "failed_report.json").is_file()
    bundle.verify_bundle(target)


def test_config_errors_name_the_problem(data, tmp_path):
    with pytest.raises(ValueError, match="needs --representative"):
        ExportConfig(model=str(data["keras"]), mode="int8", out=str(tmp_path), bin=(data["bin"],))
    with pytest.raises(FileNotFoundError, match="nope.keras"):
        ExportConfig(model=str(tmp_path / "nope.keras"), mode="fp32", out=str(tmp_path))
    with pytest.raises(ValueError, match="held-out images"):
        ExportConfig(model=str(data["keras"]), mode="fp32", out=str(tmp_path))


def test_saved_model_input_converts_without_rewrite(data, tmp_path):
    saved = tmp_path / "plain_sm"
    data["model"].export(str(saved), format="tf_saved_model", verbose=False)
    out = tmp_path / "sm_bundle"
    report = run_export(ExportConfig(model=str(saved), mode="fp32", out=str(out),
                                     validation_data=str(data["root"]), num_validation=6, golden_count=1))
    assert report["passed"] and report["export"]["prelu_rewrite"] == "none"
    assert report["agreement"]["cosine_min"] >= 0.999999
    bundle.verify_bundle(out)
    with pytest.raises(ValueError, match="need a .keras model"):
        run_export(ExportConfig(model=str(saved), mode="fp32", out=str(out), raw_input=True,
                                validation_data=str(data["root"])))


def test_dynamic_batch_and_l2_output(data, tmp_path):
    out = tmp_path / "dyn"
    report = run_export(ExportConfig(model=str(data["keras"]), mode="fp16", out=str(out), dynamic_batch=True,
                                     l2_normalize=True, validation_data=str(data["root"]), num_validation=6,
                                     golden_count=2))
    assert report["passed"] and report["export"]["batch_size"] is None
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["input"]["shape"][0] == -1 and meta["input"]["batch"] == "dynamic"
    assert meta["output"]["l2_normalized"] is True
    from pocketnet_tf.export.runtime import TFLiteRunner

    pixels = factory.pixels(3, seed=7)
    got = TFLiteRunner(out / "model.tflite").run(preprocess.normalize(pixels))  # one call, batch of 3
    ref = np.asarray(data["model"](preprocess.normalize(pixels)))
    np.testing.assert_allclose(got, ref / np.linalg.norm(ref, axis=1, keepdims=True), rtol=0, atol=2e-3)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    bundle.verify_bundle(out)


def test_corrupt_keras_file_is_named(data, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="broken.keras: cannot load Keras model"):
        run_export(ExportConfig(model=str(bad), mode="fp32", out=str(tmp_path / "o"),
                                validation_data=str(data["root"])))
    assert not (tmp_path / "o").exists()
