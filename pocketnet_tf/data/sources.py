"""Opening a dataset location: detect its layout, validate labels and classes, probe decoding.

Supported locations (detected by :func:`open_source`):

* a directory with ``train.rec`` / ``train.idx`` (insightface RecordIO, spec §6.1), or a path
  to a ``.rec`` file (its ``.idx`` beside it);
* a TFRecord shard set (a directory with ``manifest.json``, :mod:`pocketnet_tf.data.shards`);
* a folder-per-identity tree ``root/<identity>/<image>.jpg|png``;
* a ``.tfrecord`` file written by :mod:`pocketnet_tf.data.convert`.

Problems that make training meaningless (no images, labels outside ``property``'s
``num_classes``, classes without images, no decodable image in a sample) raise here, before a
dataset is built.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from absl import logging

from pocketnet_tf.data.corrupt import CorruptRecordCounter

__all__ = ["ImageSource", "open_source", "probe_decoding"]


class ImageSource:
    """A dataset opened and validated: labels, class count, random access to encoded images.

    Build it with :func:`open_source`. Positions ``0 .. len-1`` index the usable records (the
    order of the index file / the sorted folder tree / the TFRecord file / the shard set).
    """

    def __init__(self, backend, counter: CorruptRecordCounter):
        self.backend = backend
        self.counter = counter
        self.kind = backend.kind
        self.location = str(backend.location)
        for key, message in backend.skipped:
            counter.add(message, key=("skipped", key))
        counter.describe = self.describe
        self.labels = np.asarray(backend.labels, dtype=np.int64)
        self.num_classes = self._validate()
        self.decoding_probed = False  # set by the pipeline once probe_decoding passed

    def _validate(self) -> int:
        labels = self.labels
        where = self.location
        if labels.size == 0:
            skipped = len(self.backend.skipped)
            extra = f" ({skipped} corrupt record(s) skipped; first: {self.backend.skipped[0][1]})" if skipped else ""
            raise ValueError(f"{where}: the dataset has no usable images{extra}")
        declared = self.backend.num_classes_declared
        upper = declared if declared is not None else None
        bad = labels < 0 if upper is None else (labels < 0) | (labels >= upper)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            rng = f"0..{upper - 1} (property num_classes={upper})" if upper is not None else ">= 0"
            raise ValueError(
                f"{where}: {int(bad.sum())} image(s) have labels outside {rng}; first: "
                f"{self.backend.describe(first)} has label {int(labels[first])}"
            )
        num_classes = declared if declared is not None else int(labels.max()) + 1
        present = np.bincount(labels, minlength=num_classes) > 0
        if not present.all():
            missing = np.flatnonzero(~present)
            skipped = len(self.backend.skipped)
            if declared is not None and missing.size <= skipped:
                # The gap can be the corrupt records' doing; the class count is known from
                # `property`, so training can go on (those classes just get no positives).
                logging.warning(
                    "%s: %d class(es) have no usable images after skipping %d corrupt record(s) (first: %s)",
                    where, missing.size, skipped, missing[:10].tolist(),
                )
                return int(num_classes)
            raise ValueError(
                f"{where}: labels are not contiguous: {missing.size} of {num_classes} classes have no images "
                f"(first missing class ids: {missing[:10].tolist()}); labels must cover 0..{num_classes - 1}"
            )
        return int(num_classes)

    def __len__(self) -> int:
        return int(self.labels.size)

    @property
    def image_size_hint(self) -> tuple[int, int] | None:
        return self.backend.image_size

    def describe(self, i: int) -> str:
        return self.backend.describe(i)

    def source_id(self, i: int) -> str:
        """Short, location-independent name of position ``i`` (stored in converted files)."""
        return self.backend.source_id(i)

    def read_image(self, i: int) -> bytes:
        return self.backend.read_image(i)

    def read_many(self, positions) -> list[bytes]:
        """Encoded bytes per position; a record that cannot be read is counted (once) and
        given as ``b""``, which the decoder then rejects."""
        out = []
        for i in positions:
            i = int(i)
            try:
                out.append(self.backend.read_image(i))
            except (ValueError, OSError) as err:
                self.counter.add(str(err), key=("pos", i))
                out.append(b"")
        return out

    def close(self) -> None:
        self.backend.close()


def _detect(location: Path):
    from pocketnet_tf.data import folder, recordio, shards, tfrecord

    if location.is_file():
        if location.suffix == ".rec":
            return recordio.InsightFaceRecordSource(location.parent, prefix=location.stem)
        return tfrecord.TFRecordSource(location)
    if location.is_dir():
        if (location / "train.rec").exists():
            return recordio.InsightFaceRecordSource(location)
        if shards.is_shard_set(location):
            return shards.ShardSetSource(location)
        if folder.looks_like_folder_tree(location):
            return folder.FolderSource(location)
        raise ValueError(
            f"{location}: not a dataset: expected a directory with train.rec/train.idx, a folder-per-identity "
            "tree (root/<identity>/<image>.jpg|png), a shard set (manifest.json) or a .tfrecord file"
        )
    raise FileNotFoundError(f"{location}: dataset not found")


def open_source(location, *, counter: CorruptRecordCounter | None = None) -> ImageSource:
    """Opens and validates a dataset (see the module doc for the supported layouts).

    Args:
      location: a path, or an already opened :class:`ImageSource` (returned as is).
      counter: where skipped records are counted (a new counter by default).

    Raises:
      FileNotFoundError / ValueError: naming the path and the problem (no images, labels out of
        range, classes without images, unreadable index, ...).
    """
    if isinstance(location, ImageSource):
        return location
    return ImageSource(_detect(Path(location)), counter if counter is not None else CorruptRecordCounter())




def probe_decoding(source: ImageSource, *, sample: int = 32) -> int:
    """Decodes up to ``sample`` images spread over the source with the training decoder.

    Data whose images cannot be decoded at all (every JPEG corrupt, a wrong format) fails here,
    before training, instead of giving an empty epoch; a few bad images only get counted.

    Returns:
      the number of sampled images that decoded.

    Raises:
      ValueError: naming the source and the first failure if none of the sample decodes.
    """
    import tensorflow as tf

    from pocketnet_tf.data import preprocess

    positions = np.unique(np.linspace(0, len(source) - 1, num=min(sample, len(source))).astype(np.int64))
    decoded, first = 0, None
    for i, data in zip(positions.tolist(), source.read_many(positions)):
        try:
            preprocess.decode_image_tf(tf.constant(data), 8)
            decoded += 1
        except (tf.errors.InvalidArgumentError, ValueError) as err:
            source.counter.add(f"{source.describe(i)}: cannot decode image ({_first_line(err)})", key=("pos", i))
            first = first or f"{source.describe(i)}: {_first_line(err)}"
    if decoded == 0:
        raise ValueError(f"{source.location}: none of {positions.size} sampled images can be decoded "
                         f"(first: {first}); the data is unusable")
    return decoded


def _first_line(err) -> str:
    """The first line of a TensorFlow error without its ``{{function_node ...}}`` / ``[Op:...]`` wrapping."""
    text = re.sub(r"\{\{[^}]*\}\}|\[Op:\w+\]", "", getattr(err, "message", None) or str(err)).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__
