"""Similarity estimate (vs an SVD Umeyama reference) and the exactly specified bilinear warp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pocketnet_tf.data.align import (
    align_face,
    apply_similarity,
    estimate_similarity,
    invert_similarity,
    warp_affine,
)
from pocketnet_tf.data.preprocess import ARCFACE_TEMPLATE_112


def _similarity(scale, angle_deg, tx, ty):
    a = scale * math.cos(math.radians(angle_deg))
    b = scale * math.sin(math.radians(angle_deg))
    return np.array([[a, -b, tx], [b, a, ty]])


def _umeyama_svd(src, dst):
    """Textbook Umeyama (1991) with scaling, as a reference for the closed form."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    sc, dc = src - ms, dst - md
    cov = dc.T @ sc / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / ((sc**2).sum() / len(src))
    t = md - scale * rot @ ms
    return np.c_[scale * rot, t]


def test_recovers_known_similarity():
    truth = _similarity(1.7, 23.0, -40.5, 12.25)
    src = np.array([[10.0, 20.0], [60.0, 22.0], [35.0, 45.0], [15.0, 70.0], [55.0, 72.0]])
    dst = apply_similarity(truth, src)
    # Points pass through float32 (as insightface stores landmarks): agreement to ~1e-5.
    np.testing.assert_allclose(estimate_similarity(src, dst), truth, atol=2e-5)
    # Exactly representable points give the transform to rounding.
    truth = _similarity(2.0, 0.0, 3.0, -5.0)
    np.testing.assert_allclose(estimate_similarity(src, apply_similarity(truth, src)), truth, atol=1e-12)


def test_matches_svd_umeyama_on_noisy_points():
    rng = np.random.default_rng(0)
    for trial in range(5):
        src = rng.uniform(0, 200, (5, 2)).astype(np.float32)
        dst = (ARCFACE_TEMPLATE_112 + rng.normal(0, 3, (5, 2))).astype(np.float32)
        np.testing.assert_allclose(estimate_similarity(src, dst), _umeyama_svd(src, dst), atol=1e-9, rtol=1e-9)


def test_no_reflection_even_for_mirrored_points():
    src = ARCFACE_TEMPLATE_112.copy()
    dst = src.copy()
    dst[:, 0] = 112 - dst[:, 0]  # mirrored: best *similarity* is not a reflection
    m = estimate_similarity(src, dst)
    assert m[0, 0] == m[1, 1] and m[0, 1] == -m[1, 0]
    np.testing.assert_allclose(m, _umeyama_svd(src, dst), atol=1e-9)


def test_invert():
    m = _similarity(0.8, -31.0, 7.0, 9.0)
    inv = invert_similarity(m)
    pts = np.array([[1.0, 2.0], [30.0, -4.0]])
    np.testing.assert_allclose(apply_similarity(inv, apply_similarity(m, pts)), pts, atol=1e-12)
    with pytest.raises(ValueError, match="not a similarity"):
        invert_similarity(np.array([[1.0, 0.5, 0], [0.0, 1.0, 0]]))
    with pytest.raises(ValueError, match="all coincide"):
        estimate_similarity(np.ones((5, 2)), ARCFACE_TEMPLATE_112)
    with pytest.raises(ValueError, match="differ in shape"):
        estimate_similarity(np.ones((4, 2)), ARCFACE_TEMPLATE_112)


def test_warp_hand_computed_bilinear_and_border():
    img = np.array([[[0], [100]], [[200], [255]]], dtype=np.uint8)
    # Output (0, 0) samples source (0.25, 0.5): top 25, bottom 213.75, value 119.375 -> 119.
    out = warp_affine(img, [[1.0, 0.0, -0.25], [0.0, 1.0, -0.5]], (1, 1))
    assert out.shape == (1, 1, 1) and out[0, 0, 0] == 119
    # Source (1.5, 0) straddles the right edge: top = 0.5 * 100 + 0.5 * 0 (border) = 50.
    out = warp_affine(img, [[1.0, 0.0, -1.5], [0.0, 1.0, 0.0]], (1, 1))
    assert out[0, 0, 0] == 50
    # Rounding half up: source (0.5, 0) between 0 and 100 -> 50; between 100 and 255 at (1, 0.5)
    # -> 177.5 -> 178.
    out = warp_affine(img, [[1.0, 0.0, -1.0], [0.0, 1.0, -0.5]], (1, 1))
    assert out[0, 0, 0] == 178


def test_warp_identity_translation_and_rotation():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_affine(img, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], (20, 30)), img)
    shifted = warp_affine(img, [[1.0, 0.0, 3.0], [0.0, 1.0, 2.0]], (20, 30))
    np.testing.assert_array_equal(shifted[2:, 3:], img[:-2, :-3])
    assert not shifted[:2].any() and not shifted[:, :3].any()  # border 0
    # 90 degrees: forward (x, y) -> (-y + 19, x), i.e. output row v = source column x.
    rot = warp_affine(img, [[0.0, -1.0, 19.0], [1.0, 0.0, 0.0]], (30, 20))
    np.testing.assert_array_equal(rot, np.rot90(img, k=-1))


def _scalar_reference(img, matrix, out_h, out_w):
    """The module docstring's procedure, one pixel at a time with Python floats."""
    a, b, tx, ty = matrix[0][0], matrix[1][0], matrix[0][2], matrix[1][2]
    k = a * a + b * b
    ia, ib = a / k, b / k
    itx = -(ia * tx + ib * ty)
    ity = -(ia * ty - ib * tx)
    h, w, c = img.shape
    out = np.zeros((out_h, out_w, c), np.uint8)

    def p(i, j, ch):
        return float(img[j, i, ch]) if 0 <= i < w and 0 <= j < h else 0.0

    for v in range(out_h):
        for u in range(out_w):
            x = (ia * u + ib * v) + itx
            y = (ia * v - ib * u) + ity
            x0, y0 = math.floor(x), math.floor(y)
            fx, fy = x - x0, y - y0
            for ch in range(c):
                top = (1 - fx) * p(x0, y0, ch) + fx * p(x0 + 1, y0, ch)
                bottom = (1 - fx) * p(x0, y0 + 1, ch) + fx * p(x0 + 1, y0 + 1, ch)
                value = (1 - fy) * top + fy * bottom
                out[v, u, ch] = min(255, max(0, math.floor(value + 0.5)))
    return out


def test_vectorised_warp_equals_documented_scalar_procedure():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    landmarks = apply_similarity(_similarity(0.45, 17.0, 5.3, 3.1), ARCFACE_TEMPLATE_112)
    m = estimate_similarity(landmarks, ARCFACE_TEMPLATE_112[:, :] * 0.25)
    expected = _scalar_reference(img, m.tolist(), 28, 28)
    np.testing.assert_array_equal(warp_affine(img, m, (28, 28)), expected)
    assert expected.any() and (expected == 0).any()  # both interior and border pixels covered


def _smooth_face(size=112, seed=0):
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3))
    for _ in range(6):
        cx, cy, s = rng.uniform(20, 92), rng.uniform(20, 92), rng.uniform(12, 25)
        img += rng.uniform(40, 120, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))[..., None]
    return np.clip(img + 20, 0, 255).astype(np.uint8)


def test_align_face_undoes_a_known_placement():
    face = _smooth_face()
    # Place the aligned face into a 250x250 "loose crop": scale 1.6, rotation 20 deg, offset.
    placement = _similarity(1.6, 20.0, 90.0, 10.0)  # face corners stay inside
    loose = warp_affine(face, placement, (250, 250))
    landmarks = apply_similarity(placement, ARCFACE_TEMPLATE_112)
    aligned = align_face(loose, landmarks)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
    diff = np.abs(aligned.astype(int) - face.astype(int))[4:-4, 4:-4]
    # Two bilinear resamplings of a smooth image: within a couple of grey levels.
    assert diff.max() <= 3 and diff.mean() < 0.6
    # A wrong landmark order (eyes swapped) gives a visibly different crop: the test can fail.
    swapped = landmarks[[1, 0, 2, 4, 3]]
    assert np.abs(align_face(loose, swapped).astype(int) - face.astype(int)).mean() > 5
