"""Face alignment: least-squares similarity transform from 5 landmarks and a bilinear warp.

Written in plain numpy with an exactly specified arithmetic so that another implementation (the
Android demo, in Java ``double``) can reproduce the aligned crop bit for bit. Every step below is
IEEE-754 double precision, evaluated left to right, without fused multiply-add.

**Estimate** (:func:`estimate_similarity`, source points ``(xs_i, ys_i)`` -> template points
``(xd_i, yd_i)``, i = 1..n, inputs first rounded to float32 as insightface stores them, then
widened to double):

1. means by sequential sums: ``mxs = (((xs_1 + xs_2) + xs_3) + ...) / n`` and likewise ``mys``,
   ``mxd``, ``myd``;
2. centred coordinates ``us_i = xs_i - mxs``, ``vs_i = ys_i - mys``, ``ud_i = xd_i - mxd``,
   ``vd_i = yd_i - myd``;
3. sequential sums over i: ``norm = sum(us_i*us_i + vs_i*vs_i)``,
   ``dot = sum(us_i*ud_i + vs_i*vd_i)``, ``cross = sum(us_i*vd_i - vs_i*ud_i)``;
4. ``a = dot / norm``, ``b = cross / norm``, ``tx = mxd - (a*mxs - b*mys)``,
   ``ty = myd - (b*mxs + a*mys)``; the forward matrix is ``[[a, -b, tx], [b, a, ty]]``.

This is the closed form of the least-squares similarity (rotation, uniform scale, translation; no
reflection), i.e. the same transform Umeyama's SVD method (scikit-image's
``SimilarityTransform.estimate``, used by insightface) returns, without an SVD.

**Warp** (:func:`warp_affine`), output pixel (column ``u``, row ``v``), pixel centres at integer
coordinates (pixel (0, 0) covers [-0.5, 0.5]^2, as in OpenCV and the landmark files):

1. inverse matrix: ``k = a*a + b*b``, ``ia = a / k``, ``ib = b / k``, ``itx = -(ia*tx + ib*ty)``,
   ``ity = -(ia*ty - ib*tx)``; source point ``x = (ia*u + ib*v) + itx``,
   ``y = (ia*v - ib*u) + ity``;
2. ``x0 = floor(x)``, ``y0 = floor(y)``, ``fx = x - x0``, ``fy = y - y0``;
3. ``P(i, j)`` = source pixel at column ``i``, row ``j`` if ``0 <= i < width`` and
   ``0 <= j < height``, else 0 (constant border 0);
4. per channel: ``top = (1 - fx)*P(x0, y0) + fx*P(x0 + 1, y0)``,
   ``bottom = (1 - fx)*P(x0, y0 + 1) + fx*P(x0 + 1, y0 + 1)``, ``value = (1 - fy)*top + fy*bottom``;
5. output ``uint8(min(255, max(0, floor(value + 0.5))))``.

OpenCV's ``warpAffine`` quantises coordinates to 1/32 pixel and weights to 15 bits, so it differs
from this by at most about one grey level; this module is the reference for the project.
"""

from __future__ import annotations

import numpy as np

from pocketnet_tf.data.preprocess import ARCFACE_TEMPLATE_112, IMAGE_SIZE

__all__ = ["align_face", "apply_similarity", "estimate_similarity", "invert_similarity", "warp_affine"]


def _points(points, name: str) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float32).astype(np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] < 2:
        raise ValueError(f"{name}: expected an (n >= 2, 2) array of points, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError(f"{name}: points must be finite, got {pts.tolist()}")
    return pts


def estimate_similarity(src, dst) -> np.ndarray:
    """Least-squares similarity mapping ``src`` points onto ``dst`` points: a 2x3 float64 matrix.

    Raises:
      ValueError: shapes differ, or the source points all coincide (no transform determined).
    """
    src = _points(src, "source landmarks")
    dst = _points(dst, "template points")
    if src.shape != dst.shape:
        raise ValueError(f"source landmarks {src.shape} and template points {dst.shape} differ in shape")
    n = src.shape[0]
    mxs = mys = mxd = myd = 0.0
    for i in range(n):
        mxs += float(src[i, 0])
        mys += float(src[i, 1])
        mxd += float(dst[i, 0])
        myd += float(dst[i, 1])
    mxs, mys, mxd, myd = mxs / n, mys / n, mxd / n, myd / n
    norm = dot = cross = 0.0
    for i in range(n):
        us, vs = float(src[i, 0]) - mxs, float(src[i, 1]) - mys
        ud, vd = float(dst[i, 0]) - mxd, float(dst[i, 1]) - myd
        norm += us * us + vs * vs
        dot += us * ud + vs * vd
        cross += us * vd - vs * ud
    if not norm > 0.0:
        raise ValueError(f"source landmarks all coincide ({src[0].tolist()}); cannot estimate a transform")
    a = dot / norm
    b = cross / norm
    tx = mxd - (a * mxs - b * mys)
    ty = myd - (b * mxs + a * mys)
    return np.array([[a, -b, tx], [b, a, ty]], dtype=np.float64)


def _check_similarity(matrix) -> tuple[float, float, float, float]:
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape != (2, 3):
        raise ValueError(f"expected a 2x3 similarity matrix, got shape {m.shape}")
    a, b, tx, ty = float(m[0, 0]), float(m[1, 0]), float(m[0, 2]), float(m[1, 2])
    if m[1, 1] != a or m[0, 1] != -b:
        raise ValueError(f"not a similarity matrix (expected [[a, -b, tx], [b, a, ty]]): {m.tolist()}")
    if not a * a + b * b > 0.0:
        raise ValueError(f"degenerate similarity matrix (zero scale): {m.tolist()}")
    return a, b, tx, ty


def invert_similarity(matrix) -> np.ndarray:
    """Inverse of ``[[a, -b, tx], [b, a, ty]]``, computed as in the module docstring."""
    a, b, tx, ty = _check_similarity(matrix)
    k = a * a + b * b
    ia, ib = a / k, b / k
    itx = -(ia * tx + ib * ty)
    ity = -(ia * ty - ib * tx)
    return np.array([[ia, ib, itx], [-ib, ia, ity]], dtype=np.float64)


def apply_similarity(matrix, points) -> np.ndarray:
    """Maps (n, 2) points with a 2x3 matrix: ``x' = (m00*x + m01*y) + m02`` etc."""
    m = np.asarray(matrix, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    x = (m[0, 0] * pts[:, 0] + m[0, 1] * pts[:, 1]) + m[0, 2]
    y = (m[1, 0] * pts[:, 0] + m[1, 1] * pts[:, 1]) + m[1, 2]
    return np.stack([x, y], axis=1)


def warp_affine(image, matrix, size=(IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray:
    """Warps ``image`` (H, W, C) uint8 with the forward similarity ``matrix`` (source -> output).

    Output ``size`` is (height, width); bilinear sampling with border 0 and round-half-up, exactly
    as the module docstring specifies.
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, C) uint8 image, got shape {img.shape} dtype {img.dtype}")
    inverse = invert_similarity(matrix)
    ia, ib, itx = inverse[0]
    ity = inverse[1, 2]
    out_h, out_w = int(size[0]), int(size[1])
    v, u = np.meshgrid(np.arange(out_h, dtype=np.float64), np.arange(out_w, dtype=np.float64), indexing="ij")
    x = (ia * u + ib * v) + itx
    y = (ia * v - ib * u) + ity
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    h, w = img.shape[:2]
    # One zero row/column in front: every out-of-range neighbour reads index 0 of the padded image.
    padded = np.zeros((h + 1, w + 1, img.shape[2]), dtype=np.float64)
    padded[1:, 1:] = img

    def index(coord, limit):
        c = coord.astype(np.int64)
        return np.where((c >= 0) & (c < limit), c + 1, 0)

    xi0, xi1 = index(x0, w), index(x0 + 1, w)
    yi0, yi1 = index(y0, h), index(y0 + 1, h)
    top = (1.0 - fx) * padded[yi0, xi0] + fx * padded[yi0, xi1]
    bottom = (1.0 - fx) * padded[yi1, xi0] + fx * padded[yi1, xi1]
    value = (1.0 - fy) * top + fy * bottom
    return np.clip(np.floor(value + 0.5), 0, 255).astype(np.uint8)


def align_face(image, landmarks, *, template=ARCFACE_TEMPLATE_112, size: int = IMAGE_SIZE) -> np.ndarray:
    """Aligned ``size`` x ``size`` crop of ``image`` (RGB uint8) from 5 landmarks.

    ``landmarks`` are (x, y) pixels in the order of ``template`` (left eye, right eye, nose tip,
    left and right mouth corner); the default template is the ArcFace 112x112 one with the +8 px
    x-offset (insightface data, IJB evaluation).
    """
    matrix = estimate_similarity(landmarks, template)
    return warp_affine(image, matrix, (size, size))
