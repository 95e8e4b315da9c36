"""Pair verification on insightface ``.bin`` sets (LFW, CFP-FP, CFP-FF, AgeDB-30, CALFW, CPLFW).

Protocol (spec §7.1), pure numpy:

* every image and its horizontal mirror are embedded; XNorm is the mean L2 norm of all raw
  embeddings (originals and mirrors together);
* flip test: ``e = L2-normalise(e_orig + e_flip)`` (``flip=False``: ``L2-normalise(e_orig)``);
* score of pair ``k`` = squared Euclidean distance between ``e[2k]`` and ``e[2k+1]`` (in [0, 4]);
* 10 contiguous folds over the pair index (fold ``i`` of P pairs: the first ``P % 10`` folds hold
  one extra pair, as scikit-learn's unshuffled KFold); for each fold, thresholds 0.00, 0.01, ...,
  3.99 are scored on the other nine folds (predict "same" when ``d < T``), the first threshold
  with the highest training accuracy is kept and the held-out fold is scored with it;
* reported accuracy = mean and (population) standard deviation of the 10 fold accuracies.

Also reported: ``best_threshold`` (the first threshold with the highest accuracy over all pairs;
a deployment aid, not part of the cross-validated number) and TAR at FAR 1e-3 / 1e-4 from the ROC
over all pairs, ``None`` where the set has too few impostor pairs (see
:func:`pocketnet_tf.eval.roc.tar_at_far_bounded`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from pocketnet_tf.data.bin_file import read_bin
from pocketnet_tf.data.preprocess import IMAGE_SIZE, decode_image
from pocketnet_tf.eval.roc import roc_curve, tar_at_far_bounded

__all__ = [
    "THRESHOLDS",
    "VerificationResult",
    "VerificationSet",
    "best_threshold",
    "embed_with_flip",
    "evaluate_bin",
    "evaluate_embeddings",
    "evaluate_set",
    "flip_test_embeddings",
    "kfold_accuracy",
    "kfold_splits",
    "load_verification_set",
    "pair_distances",
    "xnorm",
]

#: Distance thresholds of the original protocol: 0.00, 0.01, ..., 3.99 (400 values).
THRESHOLDS = np.arange(0, 4, 0.01)
#: FAR targets reported for the .bin sets.
VERIFICATION_FAR_TARGETS = (1e-3, 1e-4)


def kfold_splits(n: int, n_folds: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """Contiguous, unshuffled folds: ``[(train_indices, test_indices), ...]``.

    The first ``n % n_folds`` folds have ``n // n_folds + 1`` items, the rest ``n // n_folds``.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n < n_folds:
        raise ValueError(f"cannot split {n} pairs into {n_folds} folds")
    sizes = np.full(n_folds, n // n_folds, dtype=np.int64)
    sizes[: n % n_folds] += 1
    bounds = np.r_[0, np.cumsum(sizes)]
    everything = np.arange(n)
    splits = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        test = everything[start:stop]
        train = np.r_[everything[:start], everything[stop:]]
        splits.append((train, test))
    return splits


def _correct_matrix(distances: np.ndarray, issame: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    # correct[t, k]: the prediction "same iff d_k < T_t" is right for pair k.
    return (distances[None, :] < thresholds[:, None]) == issame[None, :]


@dataclasses.dataclass(frozen=True)
class KFoldAccuracy:
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray

    @property
    def mean(self) -> float:
        return float(np.mean(self.fold_accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.fold_accuracies))


def kfold_accuracy(distances, issame, *, n_folds: int = 10, thresholds=THRESHOLDS) -> KFoldAccuracy:
    """The cross-validated accuracy of the original protocol (see module docstring)."""
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if distances.shape != issame.shape:
        raise ValueError(f"{distances.size} distances but {issame.size} labels")
    correct = _correct_matrix(distances, issame, thresholds)
    total = correct.sum(axis=1)
    accuracies, chosen = [], []
    for train, test in kfold_splits(distances.size, n_folds):
        # Contiguous test fold: training counts = all counts minus the fold's.
        fold_counts = correct[:, test[0] : test[-1] + 1].sum(axis=1)
        best = int(np.argmax(total - fold_counts))  # first maximum on ties
        chosen.append(thresholds[best])
        accuracies.append(fold_counts[best] / test.size)
    return KFoldAccuracy(np.asarray(accuracies), np.asarray(chosen))


def best_threshold(distances, issame, thresholds=THRESHOLDS) -> tuple[float, float]:
    """``(threshold, accuracy)``: the first threshold with the highest accuracy over all pairs."""
    distances = np.asarray(distances, dtype=np.float64).reshape(-1)
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    counts = _correct_matrix(distances, issame, thresholds).sum(axis=1)
    best = int(np.argmax(counts))
    return float(thresholds[best]), float(counts[best] / distances.size)


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def flip_test_embeddings(e_orig, e_flip=None) -> np.ndarray:
    """``L2-normalise(e_orig + e_flip)`` (or of ``e_orig`` alone), float64."""
    e = np.asarray(e_orig, dtype=np.float64)
    if e_flip is not None:
        e = e + np.asarray(e_flip, dtype=np.float64)
    return _l2_normalize(e)


def xnorm(e_orig, e_flip=None) -> float:
    """Mean L2 norm of the raw embeddings (originals and mirrors together)."""
    parts = [np.asarray(e_orig, dtype=np.float64)]
    if e_flip is not None:
        parts.append(np.asarray(e_flip, dtype=np.float64))
    return float(np.mean(np.linalg.norm(np.concatenate(parts), axis=1)))


def pair_distances(embeddings) -> np.ndarray:
    """Squared Euclidean distances between rows ``2k`` and ``2k+1``."""
    e = np.asarray(embeddings, dtype=np.float64)
    if e.shape[0] % 2:
        raise ValueError(f"need an even number of embeddings, got {e.shape[0]}")
    return np.sum(np.square(e[0::2] - e[1::2]), axis=1)


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """Everything the verification protocol reports for one set."""

    name: str
    pairs: int
    negative_pairs: int
    accuracy: float
    accuracy_std: float
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    best_threshold: float
    best_threshold_accuracy: float
    xnorm: float
    tar_at_far: dict[float, float | None]
    fpr: np.ndarray = dataclasses.field(repr=False)
    tpr: np.ndarray = dataclasses.field(repr=False)

    def to_json(self) -> dict:
        """JSON-native summary (the ROC arrays are left out)."""
        return {
            "pairs": self.pairs,
            "negative_pairs": self.negative_pairs,
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "best_threshold": self.best_threshold,
            "best_threshold_accuracy": self.best_threshold_accuracy,
            "xnorm": self.xnorm,
            "tar_at_far": {f"{far:.0e}": tar for far, tar in self.tar_at_far.items()},
            "tar_rule": "largest TAR with FPR <= FAR over all pairs; null when negative_pairs * FAR < 1",
            "fold_accuracies": self.fold_accuracies,
            "fold_thresholds": self.fold_thresholds,
        }


def evaluate_embeddings(
    e_orig, e_flip, issame, *, name: str = "set", n_folds: int = 10, flip: bool = True
) -> VerificationResult:
    """Runs the protocol on precomputed raw embeddings (rows ``2k``/``2k+1`` = pair ``k``)."""
    issame = np.asarray(issame, dtype=bool).reshape(-1)
    e_orig = np.asarray(e_orig)
    if e_orig.shape[0] != 2 * issame.size:
        raise ValueError(f"{name}: {e_orig.shape[0]} embeddings for {issame.size} pairs")
    embeddings = flip_test_embeddings(e_orig, e_flip if flip else None)
    distances = pair_distances(embeddings)
    folds = kfold_accuracy(distances, issame, n_folds=n_folds)
    threshold, threshold_acc = best_threshold(distances, issame)
    negatives = int(np.count_nonzero(~issame))
    if negatives and negatives < issame.size:
        fpr, tpr, _ = roc_curve(issame, -distances)
        tar = tar_at_far_bounded(fpr, tpr, negatives, VERIFICATION_FAR_TARGETS)
    else:  # a set with only one kind of pair has no ROC
        fpr = tpr = np.zeros(0)
        tar = {float(t): None for t in VERIFICATION_FAR_TARGETS}
    return VerificationResult(
        name=name,
        pairs=int(issame.size),
        negative_pairs=negatives,
        accuracy=folds.mean,
        accuracy_std=folds.std,
        fold_accuracies=[float(a) for a in folds.fold_accuracies],
        fold_thresholds=[round(float(t), 2) for t in folds.fold_thresholds],
        best_threshold=round(threshold, 2),
        best_threshold_accuracy=threshold_acc,
        xnorm=xnorm(e_orig, e_flip),
        tar_at_far=tar,
        fpr=fpr,
        tpr=tpr,
    )


@dataclasses.dataclass
class VerificationSet:
    """A loaded ``.bin`` set: encoded images (or decoded uint8 NHWC pixels) and pair labels."""

    name: str
    source: str
    images: list[bytes] | np.ndarray
    issame: np.ndarray

    def pixel_batches(self, batch_size: int, size: int = IMAGE_SIZE):
        """Yields uint8 RGB NHWC batches in order, decoding encoded images on the fly.

        Encoded images are brought to ``size`` x ``size`` by :func:`decode_image` (shorter side
        resized, centre crop); already decoded sets must have that size.
        """
        n = len(self.images)
        for start in range(0, n, batch_size):
            chunk = self.images[start : start + batch_size]
            if isinstance(chunk, np.ndarray):
                if chunk.shape[1:3] != (size, size):
                    raise ValueError(f"{self.source}: decoded images are {chunk.shape[1:3]}, model wants {size}x{size}")
                yield chunk
            else:
                yield np.stack(
                    [decode_image(b, source=f"{self.source} image {start + i}", size=size) for i, b in enumerate(chunk)]
                )


def load_verification_set(path, *, name: str | None = None, decode: bool = False,
                          size: int = IMAGE_SIZE) -> VerificationSet:
    """Reads a ``.bin`` (restricted unpickler); ``decode=True`` decodes all images up front at
    ``size`` x ``size`` (uint8, 37.6 kB per 112x112 image: 451 MB for LFW's 12,000)."""
    path = Path(path)
    images, issame = read_bin(path)
    if not issame.size:
        raise ValueError(f"{path}: the set has no pairs")
    vset = VerificationSet(name or path.stem, str(path), images, issame)
    if decode:
        vset.images = np.concatenate(list(vset.pixel_batches(256, size)))
    return vset


def _square_input_side(embedder) -> int:
    height, width = embedder.input_size
    if height != width:
        raise ValueError(f"{embedder.source}: verification needs a square model input, got {height}x{width}")
    return int(height)


def embed_with_flip(embedder, batches, *, total: int | None = None, progress: bool = False, desc: str = "",
                    flip: bool = True):
    """Embeds each uint8 batch and its horizontal mirror; returns ``(e_orig, e_flip)`` float32.

    With ``flip=False`` the mirrors are not embedded and ``e_flip`` is ``None``.
    """
    from tqdm.auto import tqdm

    origs, flips = [], []
    with tqdm(total=total, desc=desc or "embedding", unit="img", disable=not progress) as bar:
        for pixels in batches:
            pixels = np.asarray(pixels)
            if flip:
                both = embedder.embed(np.concatenate([pixels, pixels[:, :, ::-1]]))
                origs.append(both[: len(pixels)])
                flips.append(both[len(pixels) :])
            else:
                origs.append(embedder.embed(pixels))
            bar.update(len(pixels))
    return np.concatenate(origs), (np.concatenate(flips) if flip else None)


def evaluate_set(
    embedder, vset: VerificationSet, *, batch_size: int = 64, n_folds: int = 10, flip: bool = True,
    progress: bool = False,
) -> VerificationResult:
    """Embeds a loaded set (with mirrors) and runs the protocol."""
    batches = vset.pixel_batches(batch_size, _square_input_side(embedder))
    e_orig, e_flip = embed_with_flip(embedder, batches, total=len(vset.images), progress=progress,
                                     desc=vset.name, flip=flip)
    return evaluate_embeddings(e_orig, e_flip, vset.issame, name=vset.name, n_folds=n_folds, flip=flip)


def evaluate_bin(
    embedder, path, *, batch_size: int = 64, n_folds: int = 10, flip: bool = True, progress: bool = False,
    name: str | None = None,
) -> VerificationResult:
    """Reads ``path`` and evaluates ``embedder`` on it (see :func:`evaluate_set`)."""
    vset = load_verification_set(path, name=name)
    return evaluate_set(embedder, vset, batch_size=batch_size, n_folds=n_folds, flip=flip, progress=progress)
