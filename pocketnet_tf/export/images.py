"""Real face images for calibration and validation: a training dataset or a verification ``.bin``.

Calibration and validation images never overlap: both are drawn (seeded, without replacement)
from one shuffled order of the source, calibration first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketnet_tf.data import preprocess

__all__ = ["load_images", "split_images"]


def _bin_images(path: Path):
    from pocketnet_tf.data.bin_file import read_bin

    images, _ = read_bin(path)
    return len(images), lambda i: images[i], lambda i: f"{path} image {i}"


def _dataset_images(path: Path):
    from pocketnet_tf.data.pipeline import open_source

    source = open_source(path)
    return len(source), source.read_image, source.describe


def load_images(path, count: int, *, seed: int = 0, skip: int = 0, size: int = preprocess.IMAGE_SIZE) -> np.ndarray:
    """Decodes ``count`` images (uint8 RGB ``(count, size, size, 3)``) from ``path``.

    ``path`` is a verification ``.bin`` or anything :func:`pocketnet_tf.data.pipeline.open_source`
    reads (a RecordIO directory with ``train.rec``/``train.idx``, a ``.rec`` file, a folder tree, a
    ``.tfrecord``). Images are taken from a seeded permutation of the source, positions
    ``skip .. skip + count - 1``.

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: naming ``path``: fewer than ``skip + count`` images, or an undecodable image.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: image source not found")
    if count < 0 or skip < 0:
        raise ValueError(f"count and skip must be >= 0, got {count}, {skip}")
    if path.is_file() and path.suffix == ".bin":
        total, read, describe = _bin_images(path)
    else:
        total, read, describe = _dataset_images(path)
    if skip + count > total:
        raise ValueError(f"{path}: has {total} images, {skip + count} needed ({skip} + {count})")
    order = np.random.default_rng(seed).permutation(total)[skip : skip + count]
    out = np.zeros((count, size, size, 3), np.uint8)
    for row, i in enumerate(order):
        out[row] = preprocess.decode_image(read(int(i)), source=describe(int(i)), size=size)
    return out


def split_images(path, calibration: int, validation: int, *, seed: int = 0, size: int = preprocess.IMAGE_SIZE):
    """``(calibration images, validation images)`` from one source, disjoint."""
    both = load_images(path, calibration + validation, seed=seed, size=size)
    return both[:calibration], both[calibration:]
