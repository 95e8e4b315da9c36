"""Java core vs Python: the same inputs give the same alignment, detector input, detections and
gallery scores.

Alignment and the detector input are compared bit for bit (8-bit crops, float32 tensors, float64
matrices); BlazeFace decoding to 1e-12 (Java's ``StrictMath.exp`` and Python's ``math.exp`` may
differ in the last bit of a score); gallery scores and unit vectors bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pocketnet_tf.face import gallery as gallery_lib
from pocketnet_tf.data import align, preprocess
from pocketnet_tf.face import detect
from tests.android import jvm

SHA = "ab" * 32


def _hopper() -> np.ndarray:
    """matplotlib's sample portrait (a US Navy photo, public domain), read from the installed
    package at test time; never copied into the repository."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _similarity(scale, angle_deg, tx, ty):
    a = scale * math.cos(math.radians(angle_deg))
    b = scale * math.sin(math.radians(angle_deg))
    return np.array([[a, -b, tx], [b, a, ty]])


def test_five_point_alignment_is_bit_identical(java_core, tmp_path):
    rng = np.random.default_rng(0)
    template = preprocess.ARCFACE_TEMPLATE_112
    np.save(tmp_path / "template.npy", template)
    cases = []
    # Landmarks = the template seen through a similarity (rotation, scale, shift) plus noise; some
    # push the crop past the image border so the black-border rule is exercised.
    for i, (scale, angle, tx, ty) in enumerate([(2.3, 12.0, 40.0, 35.0), (0.7, -35.0, 5.0, 60.0),
                                                (3.1, 170.0, 300.0, 250.0), (1.0, 0.0, -30.0, -10.0)]):
        h, w = 160 + 37 * i, 200 + 11 * i
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        lm = align.apply_similarity(_similarity(scale, angle, tx, ty), template) + rng.normal(0, 1.5, (5, 2))
        np.save(tmp_path / f"img{i}.npy", image)
        np.save(tmp_path / f"lm{i}.npy", lm.astype(np.float64))
        cases.append((image, lm))
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "align5", "image": f"img{i}.npy", "landmarks": f"lm{i}.npy", "template": "template.npy",
         "size": [112, 112], "crop": f"crop{i}.npy", "matrix": f"m{i}.npy"} for i in range(len(cases))
    ]})
    for i, (image, lm) in enumerate(cases):
        py_matrix = align.estimate_similarity(lm, template)
        py_crop = align.warp_affine(image, py_matrix, (112, 112))
        java_crop = np.load(tmp_path / f"crop{i}.npy")
        java_matrix = np.load(tmp_path / f"m{i}.npy")
        np.testing.assert_array_equal(java_matrix, py_matrix)
        np.testing.assert_array_equal(java_crop, py_crop)
        assert py_crop.std() > 20  # real image content, not a black crop


def test_detector_input_is_bit_identical(java_core, tmp_path):
    rng = np.random.default_rng(1)
    images = [_hopper(), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
              rng.integers(0, 256, (300, 1000, 3), dtype=np.uint8),
              rng.integers(0, 256, (97, 45, 3), dtype=np.uint8)]
    for i, image in enumerate(images):
        np.save(tmp_path / f"img{i}.npy", image)
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "blazeface_input", "image": f"img{i}.npy", "input": f"in{i}.npy", "out": f"t{i}.json"}
        for i in range(len(images))
    ]})
    for i, image in enumerate(images):
        t = detect.input_transform(image.shape[1], image.shape[0])
        java_t = json.loads((tmp_path / f"t{i}.json").read_text())
        assert (java_t["reduction"], java_t["scale"], java_t["tx"], java_t["ty"]) == (t.reduction, t.scale, t.tx, t.ty)
        np.testing.assert_array_equal(np.load(tmp_path / f"in{i}.npy"), detect.prepare_input(image, t))
    # The 600x512 portrait is reduced by 4 to 128x150 and letterboxed.
    assert detect.input_transform(512, 600).reduction == 4


def _assert_same_detections(java: list, python: list[detect.Detection]):
    assert len(java) == len(python)
    for j, p in zip(java, python):
        assert j["score"] == pytest.approx(p.score, abs=1e-12)
        np.testing.assert_allclose(j["box"], p.box, rtol=0, atol=1e-9)
        np.testing.assert_allclose(j["keypoints"], p.keypoints, rtol=0, atol=1e-9)


def test_blazeface_on_a_real_photo_same_detection_and_crop(java_core, tmp_path):
    image = _hopper()
    detector = detect.BlazeFaceDetector()
    t = detect.input_transform(image.shape[1], image.shape[0])
    regressors, classificators = detector.raw(detect.prepare_input(image, t))
    np.save(tmp_path / "reg.npy", regressors)
    np.save(tmp_path / "cls.npy", classificators)
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "template.npy", preprocess.ARCFACE_TEMPLATE_112)
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "blazeface_detect", "regressors": "reg.npy", "classificators": "cls.npy",
         "width": image.shape[1], "height": image.shape[0], "image": "img.npy", "template": "template.npy",
         "crop": "crop.npy", "out": "dets.json"},
    ]})
    java = json.loads((tmp_path / "dets.json").read_text())
    python = detector.detect(image)
    # One face, found by several anchors and merged by the weighted NMS.
    assert len(python) == 1 and java["num_decoded"] > 1
    assert java["num_decoded"] == len(detect.decode(regressors, classificators))
    _assert_same_detections(java["detections"], python)
    face = python[0]
    assert face.score > 0.9
    # Eyes above nose above mouth; keypoint 0 is the eye on the image's left.
    kp = face.keypoints
    assert kp[0, 0] < kp[2, 0] < kp[1, 0] and max(kp[0, 1], kp[1, 1]) < kp[2, 1] < kp[3, 1]
    py_crop, py_matrix = detect.align_from_keypoints(image, face.keypoints)
    np.testing.assert_array_equal(np.load(tmp_path / "crop.npy"), py_crop)
    np.testing.assert_array_equal(np.asarray(java["matrix"]).reshape(2, 3), py_matrix)
    # The aligned eyes land within a few pixels of the template's eyes.
    eyes = align.apply_similarity(py_matrix, kp[:2])
    np.testing.assert_allclose(eyes, preprocess.ARCFACE_TEMPLATE_112[:2], atol=4.0)


def test_blazeface_decoding_and_nms_on_generated_outputs(java_core, tmp_path):
    """Synthetic raw outputs with overlapping clusters, exercising every branch of the NMS."""
    rng = np.random.default_rng(5)
    anchors = detect.anchors()
    reg = rng.normal(0, 2, (896, 16)).astype(np.float32)
    cls = np.full(896, -8.0, dtype=np.float32)
    # Three faces: anchors near three centres fire with varied scores; boxes ~ 40 px.
    for cx, cy in [(0.3, 0.3), (0.7, 0.35), (0.5, 0.75)]:
        near = np.where(np.hypot(anchors[:, 0] - cx, anchors[:, 1] - cy) < 0.09)[0]
        cls[near] = rng.uniform(-0.5, 4.0, near.size).astype(np.float32)
        reg[near, 0] = ((cx - anchors[near, 0]) * 128 + rng.normal(0, 1, near.size)).astype(np.float32)
        reg[near, 1] = ((cy - anchors[near, 1]) * 128 + rng.normal(0, 1, near.size)).astype(np.float32)
        reg[near, 2:4] = rng.uniform(35, 45, (near.size, 2)).astype(np.float32)
    cls[7] = 1e30  # clipped logit
    np.save(tmp_path / "reg.npy", reg)
    np.save(tmp_path / "cls.npy", cls)
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "blazeface_detect", "regressors": "reg.npy", "classificators": "cls.npy",
         "width": 640, "height": 480, "out": "dets.json"},
    ]})
    java = json.loads((tmp_path / "dets.json").read_text())
    decoded = detect.decode(reg, cls)
    t = detect.input_transform(640, 480)
    python = [t.detection_to_image(d) for d in detect.weighted_nms(decoded)]
    assert java["num_decoded"] == len(decoded) > 10
    assert len(python) >= 4  # three clusters + the lone clipped anchor
    _assert_same_detections(java["detections"], python)


def test_gallery_files_and_scores_agree(java_core, tmp_path):
    rng = np.random.default_rng(2)
    dim = 128
    g = gallery_lib.Gallery(SHA, dim)
    people = {name: rng.normal(0, 1, dim).astype(np.float32) for name in ["ada", "grace", "Zoë 名"]}
    for name, centre in people.items():
        for _ in range(2):
            g.enrol(name, centre + rng.normal(0, 0.6, dim).astype(np.float32))
    g.save(tmp_path / "g.json")
    queries = np.stack([people["grace"] + rng.normal(0, 0.6, dim), rng.normal(0, 1, dim),
                        people["ada"] * 3.0]).astype(np.float32)
    np.save(tmp_path / "q.npy", queries)
    threshold = 0.3
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "gallery_search", "gallery": "g.json", "model_sha256": SHA, "queries": "q.npy",
         "threshold": threshold, "enrol_as": ["q0", "q1", "q2"], "gallery_out": "g_java.json",
         "out": "results.json"},
    ]})
    results = json.loads((tmp_path / "results.json").read_text())
    for q, r in zip(queries, results):
        m = g.search(q, threshold)
        assert (r["name"], r["score"], r["accepted"]) == (m.name, m.score, m.accepted)
        assert [(e["name"], e["score"]) for e in r["ranking"]] == m.ranking
        np.testing.assert_array_equal(np.asarray(r["unit"], dtype=np.float32), gallery_lib.l2_normalize(q))
    assert [r["name"] for r in results] == ["grace", results[1]["name"], "ada"]
    assert results[0]["accepted"] and results[2]["accepted"] and not results[1]["accepted"]
    # The gallery Java enrolled into and saved loads in Python with the same bits.
    back = gallery_lib.Gallery.load(tmp_path / "g_java.json", SHA)
    assert back.names == [*people, "q0", "q1", "q2"]
    for name in people:
        for a, b in zip(back.embeddings_of(name), g.embeddings_of(name)):
            np.testing.assert_array_equal(a, b)
    for i in range(3):
        np.testing.assert_array_equal(back.embeddings_of(f"q{i}")[0], gallery_lib.l2_normalize(queries[i]))
