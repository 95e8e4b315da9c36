"""ROC curves and TAR@FAR read-outs in plain numpy (no scikit-learn dependency).

:func:`roc_curve` returns the same arrays as ``sklearn.metrics.roc_curve(labels, scores)`` with its
defaults (``drop_intermediate=True``, first threshold ``+inf``), which is what the insightface
IJB script reads its TAR values from.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "IJB_FAR_TARGETS",
    "auc",
    "roc_curve",
    "tar_at_far_bounded",
    "tar_at_far_closest",
]

#: FAR values of the IJB-B / IJB-C 1:1 table (spec §7.2).
IJB_FAR_TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def roc_curve(labels, scores, *, drop_intermediate: bool = True):
    """Receiver operating characteristic of ``scores`` (higher = more likely genuine).

    Scores are sorted in decreasing order (stable, so equal scores keep their relative order);
    one operating point per distinct score, where every pair scoring ``>= threshold`` is accepted.
    With ``drop_intermediate`` the points that lie on a straight horizontal or vertical run are
    dropped (only the corners of the staircase are kept). A ``(0, 0)`` point with threshold
    ``+inf`` is prepended.

    Args:
      labels: 1 / True for genuine pairs, 0 / False for impostor pairs.
      scores: similarity scores, same length.

    Returns:
      ``(fpr, tpr, thresholds)``: float64 arrays; ``fpr`` and ``tpr`` are non-decreasing.

    Raises:
      ValueError: lengths differ, or there are no genuine or no impostor pairs.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"roc_curve: {labels.size} labels but {scores.size} scores")
    positives = labels.astype(bool)
    order = np.argsort(scores, kind="mergesort")[::-1]
    sorted_scores = scores[order]
    sorted_pos = positives[order]
    # Last index of every run of equal scores.
    distinct = np.flatnonzero(np.diff(sorted_scores))
    cut = np.r_[distinct, sorted_scores.size - 1]
    tps = np.cumsum(sorted_pos, dtype=np.int64)[cut]
    fps = 1 + cut - tps
    thresholds = sorted_scores[cut]
    if drop_intermediate and fps.size > 2:
        corner = np.logical_or(np.diff(fps, 2) != 0, np.diff(tps, 2) != 0)
        keep = np.flatnonzero(np.r_[True, corner, True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps = np.r_[0, tps]
    fps = np.r_[0, fps]
    thresholds = np.r_[np.inf, thresholds]
    if fps[-1] == 0 or tps[-1] == 0:
        raise ValueError(
            f"roc_curve needs genuine and impostor pairs; got {int(tps[-1])} genuine, {int(fps[-1])} impostor"
        )
    return fps / fps[-1], tps / tps[-1], thresholds


def auc(fpr, tpr) -> float:
    """Area under a curve by the trapezoidal rule (``fpr`` non-decreasing)."""
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tar_at_far_closest(fpr, tpr, targets=IJB_FAR_TARGETS) -> dict[float, float]:
    """TAR at the ROC point whose FPR is closest to each target (the insightface IJB rule).

    Ties on ``|fpr - target|`` go to the point with the larger TPR (the later point: the
    original reverses the arrays before taking the first minimum). With few impostor pairs the
    closest point can be far from the target; see :func:`tar_at_far_bounded` for a
    conservative read-out.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    out = {}
    for target in targets:
        gap = np.abs(fpr - target)
        index = int(np.flatnonzero(gap == gap.min())[-1])
        out[float(target)] = float(tpr[index])
    return out


def tar_at_far_bounded(fpr, tpr, negatives: int, targets=(1e-3, 1e-4)) -> dict[float, float | None]:
    """Largest TAR among ROC points with ``FPR <= target``; ``None`` when the FAR is unresolvable.

    A target FAR is resolvable only if at least one false accept is allowed at it, i.e.
    ``negatives * target >= 1`` (LFW's 3,000 impostor pairs allow FAR 1e-3 but not 1e-4). For
    unresolvable targets the value is ``None`` rather than a number read from an FPR of 0.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    tpr = np.asarray(tpr, dtype=np.float64)
    out: dict[float, float | None] = {}
    for target in targets:
        if negatives * target < 1.0 - 1e-9:
            out[float(target)] = None
            continue
        ok = fpr <= target + 1e-12
        out[float(target)] = float(tpr[ok].max())
    return out
