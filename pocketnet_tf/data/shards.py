"""TFRecord shard sets: the scalable training format written by ``python -m pocketnet_tf.data convert``.

A shard set is a directory::

    manifest.json                 schema, classes, image size, images and bytes per shard
    index.npz                     labels (int32) and byte offsets (int64) per image, set order
    shard-00000-of-00008.tfrecord Examples in the schema of :mod:`pocketnet_tf.data.tfrecord`
    ...

Images are dealt round-robin: position ``i`` of the set is record ``i // N`` of shard ``i % N``
(``N`` shards), so reading the shards with a deterministic interleave of cycle length ``N``
gives the set order, and every shard holds a slice of every part of the source. The converter
writes the source in a seeded random order (training then needs only a modest shuffle buffer);
each Example's ``image/source_id`` names the record it came from.

The training pipeline reads the shards natively (``tf.data.TFRecordDataset``); the index gives
labels for validation and the search split, and random access for ``data info --decode``,
calibration images and the decode probe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["SCHEMA", "FORMAT_VERSION", "MANIFEST", "INDEX", "shard_name", "is_shard_set", "read_manifest",
           "ShardSetSource"]

SCHEMA = "pocketnet_tf.tfrecord_shards/1"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
INDEX = "index.npz"
_MAX_MANIFEST_BYTES = 16 << 20


def shard_name(k: int, n: int) -> str:
    return f"shard-{k:05d}-of-{n:05d}.tfrecord"


def is_shard_set(location) -> bool:
    return (Path(location) / MANIFEST).is_file()


def _check_manifest(manifest, path: Path) -> dict:
    def fail(problem):
        raise ValueError(f"{path}: {problem}")

    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        fail(f"not a shard-set manifest (expected schema {SCHEMA!r})")
    for key in ("num_classes", "num_images"):
        if not isinstance(manifest.get(key), int) or manifest[key] < 1:
            fail(f"{key} must be a positive integer, got {manifest.get(key)!r}")
    size = manifest.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        fail(f"image_size must be [height, width], got {size!r}")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not shards:
        fail("no shards listed")
    for k, shard in enumerate(shards):
        if not isinstance(shard, dict) or shard.get("path") != shard_name(k, len(shards)):
            fail(f"shard {k} must be named {shard_name(k, len(shards))!r}")
        if not all(isinstance(shard.get(key), int) and shard[key] >= 0 for key in ("num_images", "bytes")):
            fail(f"shard {k}: num_images and bytes must be non-negative integers")
    if sum(s["num_images"] for s in shards) != manifest["num_images"]:
        fail(f"shards hold {sum(s['num_images'] for s in shards)} images, num_images says {manifest['num_images']}")
    return manifest


def read_manifest(directory) -> dict:
    """The validated manifest of a shard set; ValueError naming the file if it is unusable."""
    path = Path(directory) / MANIFEST
    if path.stat().st_size > _MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: larger than {_MAX_MANIFEST_BYTES} bytes; not a shard-set manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    return _check_manifest(manifest, path)


def _read_index(directory: Path, num_images: int) -> tuple[np.ndarray, np.ndarray]:
    path = directory / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shard-set index not found")
    try:
        with np.load(path, allow_pickle=False) as index:
            labels, offsets = index["labels"], index["offsets"]
    except (ValueError, KeyError, OSError) as err:
        raise ValueError(f"{path}: unreadable shard-set index ({err})") from None
    if labels.shape != (num_images,) or offsets.shape != (num_images,):
        raise ValueError(f"{path}: index holds {labels.shape} labels and {offsets.shape} offsets for "
                         f"{num_images} images (manifest)")
    if labels.dtype.kind not in "iu" or offsets.dtype.kind not in "iu":
        raise ValueError(f"{path}: labels and offsets must be integer arrays")
    return labels.astype(np.int64), offsets.astype(np.int64)


class ShardSetSource:
    """A shard set as an image source for the pipeline (positions in set order).

    Opening reads the manifest and the index and checks every shard's size against the manifest
    (a truncated or replaced shard is refused here rather than found mid-epoch).

    Attributes:
      location: the directory; manifest: the parsed manifest; paths: the shard files.
      labels: int64 class ids per position; offsets: byte offset of each record in its shard.
      num_classes_declared, image_size: from the manifest.
    """

    kind = "shards"

    def __init__(self, directory):
        self.location = Path(directory)
        self.manifest = read_manifest(self.location)
        self.paths = [self.location / s["path"] for s in self.manifest["shards"]]
        for path, shard in zip(self.paths, self.manifest["shards"]):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: shard listed in {self.location / MANIFEST} not found")
            if path.stat().st_size != shard["bytes"]:
                raise ValueError(f"{path}: {path.stat().st_size} bytes, the manifest says {shard['bytes']} "
                                 "(truncated or replaced shard)")
        self.labels, self.offsets = _read_index(self.location, self.manifest["num_images"])
        self.num_classes_declared = self.manifest["num_classes"]
        self.image_size = tuple(self.manifest["image_size"])
        self.skipped: list[tuple[int, str]] = []
        self._fds: dict[int, int] = {}

    @property
    def num_shards(self) -> int:
        return len(self.paths)

    def __len__(self) -> int:
        return int(self.labels.size)

    def _where(self, i: int) -> tuple[Path, int, int]:
        k, record = i % self.num_shards, i // self.num_shards
        return self.paths[k], record, int(self.offsets[i])

    def describe(self, i: int) -> str:
        path, record, offset = self._where(i)
        return f"{path} record {record} (byte offset {offset})"

    def source_id(self, i: int) -> str:
        path, record, _ = self._where(i)
        return f"{path.name}:{record}"

    def read_image(self, i: int) -> bytes:
        from pocketnet_tf.data.tfrecord import parse_example, read_record_at

        k = i % self.num_shards
        if k not in self._fds:
            self._fds[k] = os.open(self.paths[k], os.O_RDONLY)
        try:
            return parse_example(read_record_at(self._fds[k], int(self.offsets[i])))[1]
        except ValueError as err:
            raise ValueError(f"{self.describe(i)}: {err}") from None

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
