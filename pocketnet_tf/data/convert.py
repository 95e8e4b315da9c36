"""Converters to TFRecord: a shard set (the training format) or one ``.tfrecord`` file.

Every image is decoded once to prove it is readable; records that cannot be read or decoded are
skipped and counted (a :class:`pocketnet_tf.data.corrupt.CorruptRecordCounter`). Labels are
checked (by opening the source) before anything is written.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np

from pocketnet_tf.data import shards, tfrecord
from pocketnet_tf.data.preprocess import probe_image
from pocketnet_tf.data.sources import open_source
from pocketnet_tf.io_utils import atomic_path, write_json_atomic

__all__ = ["TARGET_SHARD_BYTES", "default_shard_count", "convert_to_shards", "convert_to_tfrecord"]

#: Aimed-at shard size (the default shard count gives ~100-200 MB shards).
TARGET_SHARD_BYTES = 150 << 20


def _bytes_on_disk(location: Path) -> int:
    if location.is_file():
        return location.stat().st_size
    return sum(p.stat().st_size for p in location.rglob("*") if p.is_file())


def default_shard_count(location) -> int:
    """Shards of about :data:`TARGET_SHARD_BYTES` for the data at ``location``."""
    return max(1, math.ceil(_bytes_on_disk(Path(location)) / TARGET_SHARD_BYTES))


class _Progress:
    """A one-line progress bar on stderr (redrawn at most every 0.5 s)."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.stream = total, label, stream or sys.stderr
        self._last = 0.0
        self._start = None

    def update(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        if not final and now - self._last < 0.5:
            return
        self._last = now
        width = 30
        filled = width * done // max(self.total, 1)
        rate = done / max(now - self._start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                          f"images, {rate:.0f}/s")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def _readable(source, i):
    """``(encoded, height, width, format)`` of position ``i``, or None (counted) if unusable."""
    try:
        data = source.read_image(i)
        height, width, fmt = probe_image(data, source=source.describe(i))
    except (ValueError, OSError) as err:
        source.counter.add(str(err), key=("pos", i))
        return None
    return data, height, width, fmt


def _write_shards(source, order, out: Path, num_shards: int, progress):
    """Writes the records of ``order`` round-robin; returns (labels, offsets, per-shard counts, size)."""
    labels, offsets, size = [], [], None
    with contextlib.ExitStack() as stack:
        writers = [stack.enter_context(tfrecord.TFRecordWriter(out / shards.shard_name(k, num_shards)))
                   for k in range(num_shards)]
        for done, i in enumerate(order.tolist(), 1):
            item = _readable(source, i)
            if item is not None:
                data, height, width, fmt = item
                size = size or [height, width]
                writer = writers[len(labels) % num_shards]
                offsets.append(writer.offset)
                labels.append(int(source.labels[i]))
                writer.write(tfrecord.make_example(data, labels[-1], height=height, width=width, fmt=fmt,
                                                   source_id=source.source_id(i)))
            progress.update(done, final=done == order.size)
        if not labels:
            raise ValueError(f"{source.location}: no readable images to convert ({source.counter.count} corrupt)")
    return labels, offsets, [w.count for w in writers], size


def convert_to_shards(src, out, *, num_shards: int | None = None, seed: int = 0, counter=None,
                      progress_stream=None) -> dict:
    """Converts any readable dataset to a shard set in the directory ``out`` (new or empty).

    Records are written in a permutation drawn with ``seed`` and dealt round-robin to the shards
    (see :mod:`pocketnet_tf.data.shards`); the index and then the manifest are written last, so a
    directory without ``manifest.json`` is not a shard set.

    Returns:
      the manifest plus ``{"out", "num_skipped"}``.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: output must be a new or empty directory (a shard set is never overwritten)")
    source = open_source(src, counter=counter)
    num_shards = int(num_shards or default_shard_count(Path(src)))
    if not 1 <= num_shards <= max(len(source), 1):
        raise ValueError(f"--shards={num_shards}: must be between 1 and the {len(source)} images of {src}")
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(source))
    progress = _Progress(len(source), f"convert {out.name}", progress_stream)
    labels, offsets, counts, size = _write_shards(source, order, out, num_shards, progress)
    with atomic_path(out / shards.INDEX) as tmp, open(tmp, "wb") as f:
        np.savez(f, labels=np.asarray(labels, np.int32), offsets=np.asarray(offsets, np.int64))
    manifest = {
        "schema": shards.SCHEMA, "format_version": shards.FORMAT_VERSION, "num_classes": source.num_classes,
        "num_images": len(labels), "image_size": size, "seed": int(seed),
        "source": {"kind": source.kind, "location": str(source.location)},
        "shards": [{"path": shards.shard_name(k, num_shards), "num_images": counts[k],
                    "bytes": (out / shards.shard_name(k, num_shards)).stat().st_size} for k in range(num_shards)],
    }
    write_json_atomic(out / shards.MANIFEST, manifest)
    return {**manifest, "out": str(out), "num_skipped": source.counter.count}


def convert_to_tfrecord(src, out, *, counter=None) -> dict:
    """Converts a RecordIO directory or a folder tree (or another TFRecord) to one TFRecord file,
    in source order.

    Returns:
      ``{"out", "num_written", "num_skipped", "num_classes", "kind"}``.
    """
    out = Path(out)
    source = open_source(src, counter=counter)
    written = 0
    with tfrecord.TFRecordWriter(out) as writer:
        for i in range(len(source)):
            item = _readable(source, i)
            if item is None:
                continue
            data, height, width, fmt = item
            writer.write(tfrecord.make_example(data, int(source.labels[i]), height=height, width=width, fmt=fmt,
                                               source_id=source.source_id(i)))
            written += 1
    if written == 0:
        raise ValueError(f"{src}: no readable images to convert ({source.counter.count} corrupt)")
    return {"out": str(out), "num_written": written, "num_skipped": source.counter.count,
            "num_classes": source.num_classes, "kind": source.kind}
