"""IJB-B / IJB-C 1:1 template verification on the insightface release layout (spec §7.2).

Layout under ``root`` (``<t>`` = ``ijbb`` or ``ijbc``)::

    meta/<t>_face_tid_mid.txt         image name, template id, media id          (one image a line)
    meta/<t>_name_5pts_score.txt      image name, 10 landmark numbers, faceness  (x1 y1 ... x5 y5 s)
    meta/<t>_template_pair_label.txt  template 1, template 2, label (1 genuine, 0 impostor)
    loose_crop/<image name>           the loose face crops (JPEG)

Pipeline: each loose crop is aligned to 112x112 with the 5 landmarks
(:func:`pocketnet_tf.data.align.align_face`, ArcFace template with the +8 px offset); the crop and
its mirror are embedded; the image feature is ``e_orig + e_flip`` (raw norm kept), multiplied by
the faceness score; within a template the images of one media are averaged, the template feature
is the sum of its media features, L2-normalised; a pair's score is the cosine of its two
templates. TAR is read from the ROC at FAR 1e-6 ... 1e-1 with the closest-FPR rule
(:func:`pocketnet_tf.eval.roc.tar_at_far_closest`). The three switches of the original test mode
(flip test, keep the raw norm, detector-score weighting) are arguments, all on by default.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import re
from pathlib import Path

import numpy as np

from pocketnet_tf.data.align import align_face
from pocketnet_tf.data.preprocess import ARCFACE_TEMPLATE_112
from pocketnet_tf.eval.roc import IJB_FAR_TARGETS, auc, roc_curve, tar_at_far_closest

__all__ = [
    "IJBMeta",
    "IJBResult",
    "aligned_batches",
    "canonical_set_name",
    "evaluate_ijb",
    "image_features",
    "pair_scores",
    "read_ijb_meta",
    "template_features",
]


def canonical_set_name(ijb_set: str) -> str:
    """``"IJBB"`` or ``"IJBC"`` from spellings like ``IJBC``, ``ijb-c``, ``IJB_B``."""
    name = re.sub(r"[^a-z]", "", str(ijb_set).lower())
    if name not in ("ijbb", "ijbc"):
        raise ValueError(f"unknown IJB set {ijb_set!r}; expected IJBB or IJBC")
    return name.upper()


@dataclasses.dataclass
class IJBMeta:
    """The parsed meta lists of one IJB set (image order of ``<t>_face_tid_mid.txt``)."""

    image_names: list[str]
    templates: np.ndarray  # (N,) int64
    medias: np.ndarray  # (N,) int64
    landmarks: np.ndarray  # (N, 5, 2) float32
    faceness: np.ndarray  # (N,) float32
    pairs: np.ndarray  # (P, 2) int64 template ids
    labels: np.ndarray  # (P,) int64, 1 genuine


def _read_rows(path: Path, n_fields: int) -> list[list[str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: IJB meta file not found")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != n_fields:
                raise ValueError(f"{path}:{number}: expected {n_fields} fields, got {len(fields)}: {line.strip()!r}")
            rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: no entries")
    return rows


def _ints(path: Path, rows, columns) -> np.ndarray:
    try:
        return np.array([[int(r[c]) for c in columns] for r in rows], dtype=np.int64)
    except ValueError as err:
        raise ValueError(f"{path}: non-integer id ({err})") from None


def read_ijb_meta(root, ijb_set: str = "IJBC") -> IJBMeta:
    """Parses and cross-checks the three meta lists (see module docstring).

    Raises:
      FileNotFoundError: a meta file is missing.
      ValueError: a malformed line (file:line named), an image without landmarks, or a pair
        naming a template that has no images.
    """
    root = Path(root)
    prefix = canonical_set_name(ijb_set).lower()
    meta = root / "meta"
    tid_path = meta / f"{prefix}_face_tid_mid.txt"
    lmk_path = meta / f"{prefix}_name_5pts_score.txt"
    pair_path = meta / f"{prefix}_template_pair_label.txt"

    tid_rows = _read_rows(tid_path, 3)
    names = [r[0] for r in tid_rows]
    ids = _ints(tid_path, tid_rows, (1, 2))

    lmk_rows = _read_rows(lmk_path, 12)
    try:
        values = np.array([[float(v) for v in r[1:]] for r in lmk_rows], dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{lmk_path}: non-numeric landmark or score ({err})") from None
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{lmk_path}: non-finite landmark or score")
    lmk_names = [r[0] for r in lmk_rows]
    if lmk_names != names:
        # Not in the same order: join by name (names must then be unique).
        index = {n: i for i, n in enumerate(lmk_names)}
        if len(index) != len(lmk_names):
            raise ValueError(f"{lmk_path}: duplicate image names and order differs from {tid_path.name}")
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"{lmk_path}: no landmarks for {len(missing)} images of {tid_path.name}, "
                             f"e.g. {missing[0]!r}")
        values = values[[index[n] for n in names]]

    pair_rows = _read_rows(pair_path, 3)
    pair_ids = _ints(pair_path, pair_rows, (0, 1, 2))
    labels = pair_ids[:, 2]
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{pair_path}: labels must be 0 or 1, got {sorted(set(labels.tolist()))}")
    known = np.unique(ids[:, 0])
    unknown = np.setdiff1d(np.unique(pair_ids[:, :2]), known)
    if unknown.size:
        raise ValueError(f"{pair_path}: {unknown.size} templates have no images in {tid_path.name}, "
                         f"e.g. {int(unknown[0])}")
    return IJBMeta(
        image_names=names,
        templates=ids[:, 0],
        medias=ids[:, 1],
        landmarks=values[:, :10].reshape(-1, 5, 2),
        faceness=values[:, 10],
        pairs=pair_ids[:, :2],
        labels=labels,
    )


def _load_aligned(path: Path, landmarks: np.ndarray) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            pixels = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: IJB loose crop not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot decode image ({err})") from None
    try:
        return align_face(pixels, landmarks, template=ARCFACE_TEMPLATE_112)
    except ValueError as err:
        raise ValueError(f"{path}: cannot align ({err})") from None


def aligned_batches(root, meta: IJBMeta, *, batch_size: int = 256, workers: int = 2):
    """Yields aligned uint8 (B, 112, 112, 3) crops in meta order (decoding/alignment in threads)."""
    crops = Path(root) / "loose_crop"
    n = len(meta.image_names)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            jobs = [crops / meta.image_names[i] for i in range(start, stop)]
            yield np.stack(list(pool.map(_load_aligned, jobs, meta.landmarks[start:stop])))


def image_features(e_orig, e_flip, faceness, *, flip: bool = True, normalize: bool = False,
                   detector_score: bool = True) -> np.ndarray:
    """Per-image features: ``e_orig (+ e_flip)``, optionally L2-normalised, optionally x faceness."""
    feats = np.asarray(e_orig, dtype=np.float64)
    if flip:
        feats = feats + np.asarray(e_flip, dtype=np.float64)
    if normalize:
        feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    if detector_score:
        feats = feats * np.asarray(faceness, dtype=np.float64)[:, None]
    return feats


def template_features(features, templates, medias) -> tuple[np.ndarray, np.ndarray]:
    """Media-averaged, summed, L2-normalised template features.

    Returns:
      ``(template_ids, feats)``: sorted unique template ids and their (T, D) unit features.
    """
    features = np.asarray(features, dtype=np.float64)
    templates = np.asarray(templates)
    medias = np.asarray(medias)
    # Group images by (template, media): sum per group, divide by the group size -> media means.
    keys = np.stack([templates, medias], axis=1)
    groups, group_of = np.unique(keys, axis=0, return_inverse=True)
    group_of = group_of.reshape(-1)
    sums = np.zeros((len(groups), features.shape[1]))
    np.add.at(sums, group_of, features)
    counts = np.bincount(group_of, minlength=len(groups)).astype(np.float64)
    media_means = sums / counts[:, None]
    template_ids, template_of = np.unique(groups[:, 0], return_inverse=True)
    pooled = np.zeros((len(template_ids), features.shape[1]))
    np.add.at(pooled, template_of.reshape(-1), media_means)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return template_ids, pooled / np.maximum(norms, 1e-12)


def pair_scores(template_ids, template_feats, pairs) -> np.ndarray:
    """Cosine score of each template pair (rows of ``pairs`` are template ids)."""
    pairs = np.asarray(pairs)
    rows = np.searchsorted(template_ids, pairs)
    if np.any(rows >= len(template_ids)) or np.any(template_ids[np.minimum(rows, len(template_ids) - 1)] != pairs):
        raise ValueError("pair list names a template without features")
    return np.sum(template_feats[rows[:, 0]] * template_feats[rows[:, 1]], axis=1)


@dataclasses.dataclass(frozen=True)
class IJBResult:
    name: str
    pairs: int
    positive_pairs: int
    negative_pairs: int
    images: int
    templates: int
    tar_at_far: dict[float, float]
    auc: float
    scores: np.ndarray = dataclasses.field(repr=False)
    labels: np.ndarray = dataclasses.field(repr=False)
    fpr: np.ndarray = dataclasses.field(repr=False)
    tpr: np.ndarray = dataclasses.field(repr=False)

    def to_json(self) -> dict:
        return {
            "pairs": self.pairs,
            "positive_pairs": self.positive_pairs,
            "negative_pairs": self.negative_pairs,
            "images": self.images,
            "templates": self.templates,
            "tar_at_far": {f"{far:.0e}": tar for far, tar in self.tar_at_far.items()},
            "auc": self.auc,
            "far_rule": "closest ROC point to each FAR (ties: larger TAR)",
        }


def score_ijb(meta: IJBMeta, e_orig, e_flip, *, name: str = "IJBC", flip: bool = True,
              normalize: bool = False, detector_score: bool = True) -> IJBResult:
    """Template pooling, pair scores, ROC and TAR@FAR from per-image embeddings."""
    feats = image_features(e_orig, e_flip, meta.faceness, flip=flip, normalize=normalize,
                           detector_score=detector_score)
    template_ids, template_feats = template_features(feats, meta.templates, meta.medias)
    scores = pair_scores(template_ids, template_feats, meta.pairs)
    fpr, tpr, _ = roc_curve(meta.labels, scores)
    return IJBResult(
        name=name,
        pairs=int(len(meta.labels)),
        positive_pairs=int(np.count_nonzero(meta.labels == 1)),
        negative_pairs=int(np.count_nonzero(meta.labels == 0)),
        images=len(meta.image_names),
        templates=int(len(template_ids)),
        tar_at_far=tar_at_far_closest(fpr, tpr, IJB_FAR_TARGETS),
        auc=auc(fpr, tpr),
        scores=scores,
        labels=meta.labels,
        fpr=fpr,
        tpr=tpr,
    )


def evaluate_ijb(embedder, root, ijb_set: str = "IJBC", *, batch_size: int = 256, workers: int = 2,
                 progress: bool = False, flip: bool = True, normalize: bool = False,
                 detector_score: bool = True) -> IJBResult:
    """Runs the whole IJB 1:1 protocol with ``embedder`` on the release under ``root``."""
    from pocketnet_tf.eval.verification import embed_with_flip

    name = canonical_set_name(ijb_set)
    meta = read_ijb_meta(root, name)
    e_orig, e_flip = embed_with_flip(
        embedder, aligned_batches(root, meta, batch_size=batch_size, workers=workers),
        total=len(meta.image_names), progress=progress, desc=name, flip=flip,
    )
    return score_ijb(meta, e_orig, e_flip, name=name, flip=flip, normalize=normalize,
                     detector_score=detector_score)
