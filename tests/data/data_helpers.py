"""Tiny datasets in the real formats for the data-layer tests (written under pytest's tmp_path)."""

from __future__ import annotations

import numpy as np

from pocketnet_tf.data import preprocess, recordio


def unique_images(n: int, size: int = 12, seed: int = 0) -> np.ndarray:
    """``n`` distinct, left-right asymmetric uint8 RGB images (so a flip is always detectable)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    images[:, :, 0, :] = 0  # left column dark, right column bright: never mirror-symmetric
    images[:, :, -1, :] = 255
    return images


def png_bytes(images) -> list[bytes]:
    """Lossless encoding, so decoding gives back the exact pixels."""
    return [preprocess.encode_png(im) for im in images]


def write_rec(directory, labels, images, *, num_classes=None):
    """insightface RecordIO set of PNG images; returns the encoded bytes per image."""
    encoded = png_bytes(images)
    size = images.shape[1]
    recordio.write_insightface_rec(directory, labels, encoded, image_size=(size, size), num_classes=num_classes)
    return encoded


def record_offset(directory, key: int) -> int:
    return recordio.read_index(directory / "train.idx")[key]


def collect(ds):
    """Every batch of a ``(x, y)`` dataset, concatenated into two numpy arrays."""
    xs, ys = [], []
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def pixels(x) -> np.ndarray:
    """Pipeline output back to uint8 pixels."""
    return np.rint(preprocess.denormalize(x)).astype(np.uint8)
