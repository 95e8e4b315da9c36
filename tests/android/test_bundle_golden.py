"""A verification bundle through the Java core: metadata and SHA-256 check, the golden crops'
preprocessing (bit for bit, float32 and int8 inputs) and the scoring of the golden embeddings."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pocketnet_tf import gallery as gallery_lib
from pocketnet_tf.data import detect
from pocketnet_tf.face_pipeline import BundleEmbedder, read_bundle_metadata
from tests.android import bundles, jvm
from tests.android.test_cross_language import _hopper


def _golden_images() -> np.ndarray:
    """A real aligned face (the portrait's BlazeFace crop) and three generated crops."""
    image = _hopper()
    face = detect.BlazeFaceDetector().detect(image)[0]
    crop, _ = detect.align_from_keypoints(image, face.keypoints)
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:112, 0:112]
    gradient = np.stack([xx * 2, yy * 2, (xx + yy)], axis=-1).clip(0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    checker = (((xx // 8 + yy // 8) % 2) * 200 + 30).astype(np.uint8)[..., None].repeat(3, axis=-1)
    return np.stack([crop, gradient, noise, checker])


@pytest.fixture(scope="module")
def bundle_dirs(tmp_path_factory):
    images = _golden_images()
    model = bundles.tiny_model()
    out = {}
    for kind, quantize in (("float32", False), ("int8", True)):
        model_bytes = bundles.convert(model, quantize, images)
        out[kind] = bundles.write_bundle(tmp_path_factory.mktemp(f"bundle_{kind}"), model_bytes, images)
    return out


@pytest.mark.parametrize("kind", ["float32", "int8"])
def test_java_preprocessing_and_scores_equal_python(java_core, bundle_dirs, kind, tmp_path):
    bundle = bundle_dirs[kind]
    meta = read_bundle_metadata(bundle)
    assert meta.input_dtype == kind and (meta.input_quantization is None) == (kind == "float32")
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "golden", "bundle": str(bundle), "inputs": "java_inputs.npy", "cosines": "cos.npy",
         "out": "golden.json"},
    ]})
    report = json.loads((tmp_path / "golden.json").read_text())
    assert report["passed"], report["failures"]
    assert report["images"] == 4 and report["input_mismatches"] == 0 and report["input_max_abs_diff"] == 0.0
    golden_inputs = np.load(bundle / "golden" / "inputs.npy")
    java_inputs = np.load(tmp_path / "java_inputs.npy")
    assert java_inputs.dtype == golden_inputs.dtype == np.dtype(kind)
    np.testing.assert_array_equal(java_inputs, golden_inputs)
    if kind == "int8":
        # Quantised inputs use most of the int8 range: a real test of the rounding.
        assert golden_inputs.min() <= -120 and golden_inputs.max() >= 120
    embeddings = np.load(bundle / "golden" / "embeddings.npy")
    java_cos = np.load(tmp_path / "cos.npy")
    for i in range(4):
        for j in range(4):
            a, b = embeddings[i], embeddings[j]
            py_cos = gallery_lib.dot(a, b) / (np.sqrt(gallery_lib.dot(a, a)) * np.sqrt(gallery_lib.dot(b, b)))
            assert java_cos[i, j] == pytest.approx(py_cos, abs=1e-15)
    g = gallery_lib.Gallery(meta.model_sha256, meta.embedding_size)
    for i, e in enumerate(embeddings):
        g.enrol(f"id{i}", e)
    for i, m in enumerate(report["matches"]):
        py = g.search(embeddings[i], meta.threshold)
        assert (m["name"], m["score"], m["accepted"]) == (py.name, py.score, py.accepted)
        assert m["name"] == f"id{i}" and m["score"] == pytest.approx(1.0, abs=1e-6)


def test_golden_embeddings_reproduce_in_litert(bundle_dirs):
    """The bundle's golden inputs through the runtime again give its golden embeddings (what the
    instrumented Android test checks on a device), and int8 tracks float32."""
    outs = {}
    for kind, bundle in bundle_dirs.items():
        emb = BundleEmbedder(bundle)
        golden = np.load(bundle / "golden" / "embeddings.npy")
        inputs = np.load(bundle / "golden" / "inputs.npy")
        again = np.stack([emb.run(t[None]) for t in inputs])
        np.testing.assert_array_equal(again, golden)
        outs[kind] = golden
    for a, b in zip(outs["float32"], outs["int8"]):
        assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.95


def test_tampered_or_broken_bundles_are_refused_by_java_and_python(java_core, bundle_dirs, tmp_path):
    good = bundle_dirs["float32"]
    cases = {}
    flipped = tmp_path / "flipped"
    shutil.copytree(good, flipped)
    data = bytearray((flipped / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 1
    (flipped / "model.tflite").write_bytes(bytes(data))
    cases["flipped"] = "does not match"
    no_quant = tmp_path / "no_quant"
    shutil.copytree(bundle_dirs["int8"], no_quant)
    meta = json.loads((no_quant / "metadata.json").read_text())
    meta["input"]["quantization"] = None
    (no_quant / "metadata.json").write_text(json.dumps(meta))
    cases["no_quant"] = "quantization"
    traversal = tmp_path / "traversal"
    shutil.copytree(good, traversal)
    meta = json.loads((traversal / "metadata.json").read_text())
    meta["model"]["file"] = "../model.tflite"
    (traversal / "metadata.json").write_text(json.dumps(meta))
    cases["traversal"] = "plain file name"
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "bundle_open", "bundle": str(good), "out": "good.json"},
        *({"op": "bundle_open", "bundle": str(tmp_path / name), "out": f"{name}.json"} for name in cases),
    ]})
    ok = json.loads((tmp_path / "good.json").read_text())
    assert ok == {"ok": True, "threshold": 0.35, "input_dtype": "FLOAT32"}
    for name, fragment in cases.items():
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert not result["ok"] and fragment in result["error"], result
        with pytest.raises(ValueError, match=fragment):
            read_bundle_metadata(tmp_path / name)
