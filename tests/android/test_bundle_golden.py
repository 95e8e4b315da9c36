"""Bundles written by the converter library (``pocketnet_tf.export``, fp32/int8, normalised and
raw input) through the Java core: metadata and SHA-256 checks, the golden faces' PNG decoding and
preprocessing against the exact input tensors the converter fed the model, the scoring of the
golden embeddings, and refusal of tampered bundles -- each compared with the Python side."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from pocketnet_tf.face import gallery as gallery_lib
from pocketnet_tf.data import preprocess
from pocketnet_tf.export.bundle import verify_bundle
from pocketnet_tf.face.pipeline import BundleEmbedder, read_bundle_metadata
from tests import factory
from tests.android import jvm

VARIANTS = [pytest.param(v, id=f"{v[0]}{'_raw' if v[1] else ''}") for v in factory.BUNDLE_VARIANTS]


def _golden(bundle):
    """(index, faces uint8 (N, H, W, 3), inputs float32 (N, H, W, 3), embeddings float32 (N, D))
    read the Python way (PIL, numpy) from the bundle's golden/ directory."""
    index = json.loads((bundle / "golden" / "golden.json").read_text())
    faces, inputs, embs = [], [], []
    for case in index["cases"]:
        faces.append(preprocess.decode_image((bundle / "golden" / case["image"]).read_bytes()))
        inputs.append(np.fromfile(bundle / "golden" / case["input"], dtype="<f4").reshape(index["input_shape"][1:]))
        embs.append(np.fromfile(bundle / "golden" / case["embedding"], dtype="<f4"))
    return index, np.stack(faces), np.stack(inputs), np.stack(embs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_java_reproduces_the_converters_golden_inputs_and_scores(java_core, real_bundles, variant, tmp_path):
    mode, raw = variant
    bundle = real_bundles[variant]
    assert verify_bundle(bundle)["passed"]  # the converter's own verifier accepts it
    meta = read_bundle_metadata(bundle)
    assert meta.mode == mode and meta.threshold is not None
    assert (meta.norm_mean, meta.norm_std) == ((0.0, 1.0) if raw else (127.5, 127.5))
    index, faces, inputs, embeddings = _golden(bundle)
    n = len(index["cases"])
    assert n == 4 and embeddings.shape == (4, factory.BUNDLE_EMBEDDING_SIZE)
    # The golden inputs are in the range the model expects: raw pixel values, or [-1, 1].
    if raw:
        np.testing.assert_array_equal(inputs, faces.astype(np.float32))
    else:
        assert -1.0 <= inputs.min() < -0.5 and 0.5 < inputs.max() <= 1.0

    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "golden", "bundle": str(bundle), "inputs": "java_inputs.npy", "faces": "java_faces.npy",
         "cosines": "cos.npy", "out": "golden.json"},
    ]})
    report = json.loads((tmp_path / "golden.json").read_text())
    assert report["passed"], report["failures"]
    assert report["images"] == 4 and report["input_values_not_bit_exact"] == 0
    assert report["input_max_abs_diff"] == 0.0
    # Java's PNG decoder equals PIL's, and its preprocessing equals the converter's input tensors
    # bit for bit (and the Python twin's, which is the converter's own function).
    np.testing.assert_array_equal(np.load(tmp_path / "java_faces.npy"), faces)
    java_inputs = np.load(tmp_path / "java_inputs.npy")
    assert java_inputs.dtype == np.float32
    np.testing.assert_array_equal(java_inputs.view(np.uint32), inputs.view(np.uint32))
    twin = BundleEmbedder(bundle)
    np.testing.assert_array_equal(np.concatenate([twin.input_tensor(f) for f in faces]), inputs)

    java_cos = np.load(tmp_path / "cos.npy")
    for i in range(n):
        for j in range(n):
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


def test_twin_reproduces_golden_embeddings_and_int8_tracks_fp32(real_bundles):
    """The Python twin's path (golden face -> input -> LiteRT) gives each bundle's golden
    embeddings exactly; on the same faces, raw input equals normalised input and int8 tracks fp32."""
    _, faces0, _, _ = _golden(real_bundles[("fp32", False)])
    outs = {}
    for variant, bundle in real_bundles.items():
        _, faces, _, golden = _golden(bundle)
        twin = BundleEmbedder(bundle)
        np.testing.assert_array_equal(np.stack([twin.embed(f) for f in faces]), golden)
        outs[variant] = np.stack([twin.embed(f) for f in faces0])
    # Raw input folds the normalisation into the graph: the same function of the pixels.
    np.testing.assert_allclose(outs[("fp32", True)], outs[("fp32", False)], rtol=0, atol=1e-5)
    for kind in (("int8", False), ("int8", True)):
        for a, b in zip(outs[("fp32", False)], outs[kind]):
            assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.99


def _copy_with(src, dst, edit_meta=None):
    shutil.copytree(src, dst)
    if edit_meta is not None:
        meta = json.loads((dst / "metadata.json").read_text())
        edit_meta(meta)
        (dst / "metadata.json").write_text(json.dumps(meta))
    return dst


def test_tampered_or_unsupported_bundles_are_refused_by_java_and_python(java_core, real_bundles, tmp_path):
    good = real_bundles[("int8", False)]
    cases = {}
    flipped = _copy_with(good, tmp_path / "flipped")
    data = bytearray((flipped / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 1
    (flipped / "model.tflite").write_bytes(bytes(data))
    cases["flipped"] = "does not match"
    _copy_with(good, tmp_path / "quantized_input",
               lambda m: m["input"].update(quantization={"scale": 0.0078125, "zero_point": 0}))
    cases["quantized_input"] = "quantization' must be null"
    _copy_with(good, tmp_path / "traversal", lambda m: m["model"].update(file="../model.tflite"))
    cases["traversal"] = "plain file name"
    _copy_with(good, tmp_path / "dynamic", lambda m: m["input"].update(shape=[-1, 112, 112, 3]))
    cases["dynamic"] = "--dynamic_batch"
    _copy_with(good, tmp_path / "old_schema",
               lambda m: (m.pop("schema"), m.update(format="pocketnet_tf.bundle", version=1)))
    cases["old_schema"] = "missing field 'schema'"
    no_threshold = _copy_with(good, tmp_path / "no_threshold", lambda m: m.update(verification=None))
    # Golden files are checked against golden.json's hashes by Java (Python's verifier re-runs them).
    golden_edit = _copy_with(good, tmp_path / "golden_edit")
    emb = golden_edit / "golden" / "face_002.embedding.f32"
    raw = bytearray(emb.read_bytes())
    raw[0] ^= 1
    emb.write_bytes(bytes(raw))
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "bundle_open", "bundle": str(good), "out": "good.json"},
        {"op": "bundle_open", "bundle": str(no_threshold), "out": "no_threshold.json"},
        {"op": "bundle_open", "bundle": str(golden_edit), "out": "golden_edit.json"},
        *({"op": "bundle_open", "bundle": str(tmp_path / name), "out": f"{name}.json"} for name in cases),
    ]})
    meta = read_bundle_metadata(good)
    ok = json.loads((tmp_path / "good.json").read_text())
    assert ok == {"ok": True, "threshold": meta.threshold, "embedding_size": factory.BUNDLE_EMBEDDING_SIZE, "cases": 4}
    assert json.loads((tmp_path / "no_threshold.json").read_text())["threshold"] is None
    assert read_bundle_metadata(no_threshold).threshold is None
    with pytest.raises(ValueError, match="no decision threshold"):
        BundleEmbedder(no_threshold).search(gallery_lib.Gallery(meta.model_sha256, 16), np.ones(16, np.float32))
    edited = json.loads((tmp_path / "golden_edit.json").read_text())
    assert not edited["ok"] and "face_002.embedding.f32: SHA-256" in edited["error"]
    for name, fragment in cases.items():
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert not result["ok"] and fragment in result["error"], result
        with pytest.raises(ValueError, match=fragment.replace("'", ".")):
            read_bundle_metadata(tmp_path / name)
