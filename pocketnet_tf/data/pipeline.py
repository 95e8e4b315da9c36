"""The training input pipeline: any supported dataset location -> ``tf.data.Dataset`` of
``(image float32 NHWC in [-1, 1], label int32)``.

Supported locations (detected by :func:`open_source`):

* a directory with ``train.rec`` / ``train.idx`` (insightface RecordIO, spec §6.1), or a path
  to a ``.rec`` file (its ``.idx`` beside it);
* a folder-per-identity tree ``root/<identity>/<image>.jpg|png``;
* a ``.tfrecord`` file written by :mod:`pocketnet_tf.data.tfrecord`.

Augmentation follows spec §6.2: training adds only a random horizontal flip (p = 0.5); the
search "train" view (spec §2.4) can add resize-then-random-crop with ``random_crop_from``.
Normalisation is :func:`pocketnet_tf.data.preprocess.normalize_tf` (x / 127.5 - 1).

Corrupt input never ends an epoch: a record that cannot be framed, read or decoded is skipped
and added to a :class:`CorruptRecordCounter` (logged, and readable by the caller while or after
iterating). Problems that make training meaningless (no images, labels outside
``property``'s ``num_classes``, classes without images) raise before a dataset is returned.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from absl import logging

from pocketnet_tf.data import preprocess

__all__ = [
    "CorruptRecordCounter",
    "DatasetInfo",
    "ImageSource",
    "open_source",
    "build_dataset",
    "stratified_split",
    "search_split",
]


class CorruptRecordCounter:
    """Thread-safe count of skipped records, with the first messages kept.

    The first ``log_first`` problems are logged as warnings one by one, then one warning per
    ``log_every`` more, so a badly damaged file is visible in the log without flooding it.
    """

    def __init__(self, *, log_first: int = 10, log_every: int = 1000, keep: int = 100):
        self._lock = threading.Lock()
        self._count = 0
        self.messages: list[str] = []
        self._log_first = log_first
        self._log_every = log_every
        self._keep = keep

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def add(self, message: str) -> None:
        with self._lock:
            self._count += 1
            n = self._count
            if len(self.messages) < self._keep:
                self.messages.append(message)
        if n <= self._log_first:
            logging.warning("skipping corrupt record (%d so far): %s", n, message)
        elif n % self._log_every == 0:
            logging.warning("%d corrupt records skipped so far; latest: %s", n, message)

    def summary(self) -> str:
        n = self.count
        if n == 0:
            return "no corrupt records"
        return f"{n} corrupt record(s) skipped; first: {self.messages[0]}"

    def __repr__(self) -> str:
        return f"CorruptRecordCounter(count={self.count})"


@dataclass(frozen=True)
class DatasetInfo:
    """What a pipeline delivers.

    Attributes:
      location: the dataset path.
      kind: ``"recordio"``, ``"folder"`` or ``"tfrecord"``.
      num_classes: number of identities (labels are ``0 .. num_classes-1``).
      num_images: images the pipeline walks per epoch before read-time skips (the selected
        indices, or every usable record).
      image_size: side of the square output images.
      batch_size, drop_remainder: as built.
      corrupt: the counter of skipped records (scan-time skips already included).
    """

    location: str
    kind: str
    num_classes: int
    num_images: int
    image_size: int
    batch_size: int
    drop_remainder: bool
    corrupt: CorruptRecordCounter = field(compare=False)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch if no record turns out corrupt while reading."""
        if self.drop_remainder:
            return self.num_images // self.batch_size
        return -(-self.num_images // self.batch_size)


class ImageSource:
    """A dataset opened and validated: labels, class count, random access to encoded images.

    Build it with :func:`open_source`. Positions ``0 .. len-1`` index the usable records (the
    order of the index file / the sorted folder tree / the TFRecord file).
    """

    def __init__(self, backend, counter: CorruptRecordCounter):
        self.backend = backend
        self.counter = counter
        self.kind = backend.kind
        self.location = str(backend.location)
        for _, message in backend.skipped:
            counter.add(message)
        self.labels = np.asarray(backend.labels, dtype=np.int64)
        self.num_classes = self._validate()

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

    def close(self) -> None:
        self.backend.close()


def _detect(location: Path):
    from pocketnet_tf.data import folder, recordio, tfrecord

    if location.is_file():
        if location.suffix == ".rec":
            return recordio.InsightFaceRecordSource(location.parent, prefix=location.stem)
        return tfrecord.TFRecordSource(location)
    if location.is_dir():
        if (location / "train.rec").exists():
            return recordio.InsightFaceRecordSource(location)
        if folder.looks_like_folder_tree(location):
            return folder.FolderSource(location)
        raise ValueError(
            f"{location}: not a dataset: expected a directory with train.rec/train.idx, a folder-per-identity "
            "tree (root/<identity>/<image>.jpg|png) or a .tfrecord file"
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


def _output_size(source: ImageSource, image_size: int | None) -> int:
    if image_size is not None:
        if int(image_size) < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        return int(image_size)
    hint = source.image_size_hint
    if hint is not None:
        return int(min(hint))
    for i in range(min(len(source), 16)):
        try:
            height, width, _ = preprocess.probe_image(source.read_image(i), source=source.describe(i))
            return int(min(height, width))
        except ValueError:
            continue
    return preprocess.IMAGE_SIZE


def build_dataset(
    location,
    *,
    batch_size: int,
    training: bool,
    image_size: int | None = None,
    indices=None,
    shuffle: bool | None = None,
    drop_remainder: bool | None = None,
    seed: int | None = None,
    random_crop_from: int | None = None,
    num_parallel_calls: int | None = None,
    counter: CorruptRecordCounter | None = None,
):
    """Builds the input pipeline.

    Args:
      location: dataset path or an opened :class:`ImageSource` (reuse one to avoid re-scanning).
      batch_size: images per batch.
      training: adds the random horizontal flip (p = 0.5); shuffles and drops the remainder by
        default.
      image_size: output side; default: the ``property`` size, else the first image's size.
        Images of another size are resized (shorter side) and centre-cropped when decoded.
      indices: positions (``0 .. len(source)-1``) to use, e.g. one half of
        :func:`stratified_split`; default all.
      shuffle: reshuffle every epoch (default ``training``).
      drop_remainder: default ``training``.
      seed: makes shuffling, flips and crops reproducible.
      random_crop_from: training only: decode at this size, then take a random
        ``image_size`` crop (the architecture-search train view uses 128 -> 112).
      num_parallel_calls: decode parallelism (default ``tf.data.AUTOTUNE``).
      counter: counter for skipped records when ``location`` is a path (an opened source keeps
        its own counter).

    Returns:
      ``(dataset, DatasetInfo)``; batches are ``(float32 [B, S, S, 3] in [-1, 1], int32 [B])``.
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    source = open_source(location, counter=counter)
    source_counter = source.counter
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    size = _output_size(source, image_size)
    decode_size = size
    if random_crop_from is not None and training:
        if random_crop_from < size:
            raise ValueError(f"random_crop_from={random_crop_from} must be >= image_size={size}")
        decode_size = int(random_crop_from)

    if indices is None:
        positions = np.arange(len(source), dtype=np.int64)
    else:
        positions = np.asarray(indices, dtype=np.int64).reshape(-1)
        if positions.size == 0:
            raise ValueError(f"{source.location}: the index subset is empty")
        if positions.min() < 0 or positions.max() >= len(source):
            raise ValueError(
                f"{source.location}: index subset has positions outside 0..{len(source) - 1} "
                f"(min {positions.min()}, max {positions.max()})"
            )
    labels = source.labels.astype(np.int32)
    blank = np.zeros((decode_size, decode_size, 3), np.uint8)

    def load(position):
        i = int(position)
        try:
            data = source.read_image(i)
            image = preprocess.decode_image(data, source=source.describe(i), size=decode_size)
        except (ValueError, OSError) as err:
            source_counter.add(str(err))
            return blank, np.int32(-1), False
        return image, labels[i], True

    def load_tf(position, *rest):
        image, label, ok = tf.numpy_function(load, [position], [tf.uint8, tf.int32, tf.bool], stateful=False)
        image = tf.ensure_shape(image, [decode_size, decode_size, 3])
        label = tf.ensure_shape(label, [])
        ok = tf.ensure_shape(ok, [])
        return (image, label, ok, *rest)

    def augment(image, label, ok, rnd):
        del ok
        if decode_size != size:
            span = decode_size - size + 1
            top = tf.cast(tf.math.floormod(tf.math.floordiv(rnd, 2), span), tf.int32)
            left = tf.cast(tf.math.floormod(tf.math.floordiv(rnd, 2 * span), span), tf.int32)
            image = image[top : top + size, left : left + size, :]
        flip = tf.equal(tf.math.floormod(rnd, 2), 1)
        image = tf.where(flip, tf.reverse(image, axis=[1]), image)
        return preprocess.normalize_tf(image), label

    def finish(image, label, ok):
        del ok
        return preprocess.normalize_tf(image), label

    parallel = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    if shuffle:
        # A full permutation per pass, drawn as one tensor: a shuffle buffer of millions of
        # records would cost far more memory, and a small one would not mix identities that the
        # record file stores grouped. A new key is drawn on every iteration of the dataset.
        table = tf.constant(positions)
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).take(1)
        ds = keys.flat_map(
            lambda key: tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(table, seed=key))
        )
    else:
        ds = tf.data.Dataset.from_tensor_slices(positions)
    if training:
        flips_seed = None if seed is None else seed + 1
        ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=flips_seed, rerandomize_each_iteration=True))
    ds = ds.map(load_tf, num_parallel_calls=parallel)
    ds = ds.filter(lambda image, label, ok, *rest: ok)
    ds = ds.map(augment if training else finish, num_parallel_calls=parallel)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    info = DatasetInfo(
        location=source.location,
        kind=source.kind,
        num_classes=source.num_classes,
        num_images=int(positions.size),
        image_size=size,
        batch_size=int(batch_size),
        drop_remainder=bool(drop_remainder),
        corrupt=source_counter,
    )
    return ds, info


def stratified_split(labels, *, seed: int = 2, fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Splits positions into two disjoint halves, stratified by identity (spec §2.4).

    Each class's positions are shuffled with ``seed`` and cut at ``fraction`` of its size; for
    an odd count the extra image goes to either half at random (per class, from the same seed),
    so every class differs by at most one between the halves. Unlike the original (spec §9.12f)
    no image is left out.

    Returns:
      ``(first, second)``: sorted int64 position arrays (the first is used for weight updates,
      the second for architecture updates in the search).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if labels.size == 0:
        raise ValueError("cannot split an empty label list")
    rng = np.random.default_rng(seed)
    order = rng.permutation(labels.size)
    grouped = order[np.argsort(labels[order], kind="stable")]
    grouped_labels = labels[grouped]
    classes, starts, counts = np.unique(grouped_labels, return_index=True, return_counts=True)
    exact = counts * fraction
    take = np.floor(exact).astype(np.int64)
    frac_part = exact - take
    take += (rng.random(classes.size) < frac_part).astype(np.int64)
    class_pos = np.searchsorted(classes, grouped_labels)
    rank = np.arange(labels.size) - starts[class_pos]
    first_mask = rank < take[class_pos]
    return np.sort(grouped[first_mask]), np.sort(grouped[~first_mask])


def search_split(location, *, seed: int = 2, counter: CorruptRecordCounter | None = None):
    """Opens ``location`` and splits it for architecture search.

    Returns:
      ``(source, first, second)``: the opened :class:`ImageSource` (pass it to
      :func:`build_dataset` with ``indices=first`` / ``indices=second``) and the two halves.
    """
    source = open_source(location, counter=counter)
    first, second = stratified_split(source.labels, seed=seed)
    return source, first, second
