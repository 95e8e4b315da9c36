"""The training input pipeline: any supported dataset location -> ``tf.data.Dataset`` of
``(image float32 NHWC in [-1, 1], label int32)``.

Supported locations: see :mod:`pocketnet_tf.data.sources` (RecordIO, TFRecord shard sets,
folder trees, single ``.tfrecord`` files). Shard sets are read natively (``TFRecordDataset``);
the others hand encoded bytes over from Python in batches. Decoding, flips, crops and
normalisation are TensorFlow ops in parallel stages (:mod:`pocketnet_tf.data.stages`).

Augmentation follows spec §6.2: training adds only a random horizontal flip (p = 0.5); the
search "train" view (spec §2.4) can add resize-then-random-crop with ``random_crop_from``.
Normalisation is :func:`pocketnet_tf.data.preprocess.normalize_tf` (x / 127.5 - 1).

Corrupt input never ends an epoch: a record that cannot be framed, read or decoded is skipped
and added, once per record, to a :class:`CorruptRecordCounter` (logged, and readable by the
caller while or after iterating). Problems that make training meaningless (no images, labels
outside ``property``'s ``num_classes``, classes without images, no decodable image in a sample)
raise before a dataset is returned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pocketnet_tf.data import preprocess, stages
from pocketnet_tf.data.corrupt import CorruptRecordCounter
from pocketnet_tf.data.sources import ImageSource, open_source, probe_decoding

__all__ = [
    "CorruptRecordCounter",
    "DatasetInfo",
    "ImageSource",
    "open_source",
    "build_dataset",
    "stratified_split",
    "search_split",
    "SHUFFLE_BUFFER",
    "SHARD_CYCLE",
]

#: Decoded images held by the shuffle buffer of a shard set (x 37 KB at 112 x 112).
SHUFFLE_BUFFER = 2048
#: Shards read at once (all of them up to this many: then the set order is the read order).
SHARD_CYCLE = 64


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

    @classmethod
    def of(cls, source: ImageSource, positions, image_size: int, batch_size: int, drop_remainder: bool):
        """The info of a pipeline over ``positions`` of ``source``."""
        return cls(location=source.location, kind=source.kind, num_classes=source.num_classes,
                   num_images=int(positions.size), image_size=image_size, batch_size=int(batch_size),
                   drop_remainder=bool(drop_remainder), corrupt=source.counter)

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch if no record turns out corrupt while reading."""
        if self.drop_remainder:
            return self.num_images // self.batch_size
        return -(-self.num_images // self.batch_size)


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


def _positions(source: ImageSource, indices) -> np.ndarray:
    if indices is None:
        return np.arange(len(source), dtype=np.int64)
    positions = np.asarray(indices, dtype=np.int64).reshape(-1)
    if positions.size == 0:
        raise ValueError(f"{source.location}: the index subset is empty")
    if positions.min() < 0 or positions.max() >= len(source):
        raise ValueError(
            f"{source.location}: index subset has positions outside 0..{len(source) - 1} "
            f"(min {positions.min()}, max {positions.max()})"
        )
    return positions


def _pass_keys(shuffle: bool, seed):
    """One ``[2]`` int64 key per iteration of the dataset (redrawn on every iteration)."""
    import tensorflow as tf

    if not shuffle:
        return tf.data.Dataset.from_tensors(tf.zeros([2], tf.int64))
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2).take(1)


def _random_access_images(source: ImageSource, positions, *, shuffle, seed, parallel, size):
    """``(image uint8, label)`` read through Python in batches, decoded natively."""
    import tensorflow as tf

    table = tf.constant(positions)
    labels = tf.constant(source.labels.astype(np.int32))
    mask = source.counter.native_mask(len(source))

    def one_pass(key):
        # A full permutation per pass, drawn as one tensor: a shuffle buffer of millions of
        # records would cost far more memory, and a small one would not mix identities that the
        # record file stores grouped.
        order = tf.random.experimental.stateless_shuffle(table, seed=key) if shuffle else table
        records = stages.read_random_access(source, order, labels, parallel=parallel)
        return stages.decode_checked(records, end_seq=tf.size(order), mask=mask, size=size, parallel=parallel,
                                     expected_positions=lambda lo, hi: order[lo:hi])

    return _pass_keys(shuffle, seed).flat_map(one_pass)


def _shard_images(source: ImageSource, positions, *, shuffle, seed, parallel, size):
    """``(image uint8, label)`` read by ``TFRecordDataset`` from every shard, decoded natively."""
    import tensorflow as tf

    backend = source.backend
    n = backend.num_shards
    counts = [s["num_images"] for s in backend.manifest["shards"]]
    member = None
    if positions.size != len(source):
        chosen = np.zeros(len(source), bool)
        chosen[positions] = True
        member = tf.constant(chosen)
    mask = source.counter.native_mask(len(source))

    def one_shard(path, k, count):
        def expected(lo, hi):
            lost = tf.range(lo, hi) * n + tf.cast(k, tf.int64)
            return lost if member is None else tf.boolean_mask(lost, tf.gather(member, lost))

        records = stages.read_shard(path, k, n, member=member)
        return stages.decode_checked(records, end_seq=count, expected_positions=expected, mask=mask, size=size,
                                     parallel=parallel)

    files = tf.data.Dataset.from_tensor_slices(([str(p) for p in backend.paths], np.arange(n, dtype=np.int64),
                                                np.asarray(counts, np.int64)))
    if shuffle:
        files = files.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = files.interleave(one_shard, cycle_length=min(n, SHARD_CYCLE), block_length=1, num_parallel_calls=parallel,
                          deterministic=True)
    if shuffle:
        ds = ds.shuffle(min(SHUFFLE_BUFFER, positions.size), seed=None if seed is None else seed + 2,
                        reshuffle_each_iteration=True)
    return ds


def _finish(images, *, training, seed, size, decode_size, batch_size, drop_remainder, parallel, threads):
    import tensorflow as tf

    # Random bits for flips and crops from a generator drawn once per batch, in order (a
    # sequential map): reproducible for a seed, new on every iteration, and no random *source*
    # dataset, which auto-sharding by file would shard too.
    with tf.init_scope(), tf.device("/cpu:0"):
        generator = (tf.random.Generator.from_non_deterministic_state() if seed is None
                     else tf.random.Generator.from_seed(seed + 1))
    ds = images.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda x, last, y: (x, y, generator.uniform_full_int(tf.shape(y), tf.int64)))
    ds = ds.map(lambda x, y, rnd: stages.augment_batch(x, y, rnd, size=size, decode_size=decode_size,
                                                       training=training), num_parallel_calls=parallel)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    if threads is None:
        return ds
    options = tf.data.Options()
    options.threading.private_threadpool_size = int(threads)
    options.threading.max_intra_op_parallelism = 1
    return ds.with_options(options)


def _decode_size(size: int, random_crop_from: int | None, training: bool) -> int:
    """The side images are decoded at: ``random_crop_from`` for a training random crop, else ``size``."""
    if random_crop_from is None or not training:
        return size
    if random_crop_from < size:
        raise ValueError(f"random_crop_from={random_crop_from} must be >= image_size={size}")
    return int(random_crop_from)


def _probe_decoding_once(source: ImageSource) -> None:
    """Decodes a sample of ``source`` the first time a dataset is built from it (an opened source
    is reused for every epoch, so later builds skip the probe)."""
    if not source.decoding_probed:
        probe_decoding(source)
        source.decoding_probed = True


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
    threads: int | None = None,
):
    """Builds the input pipeline.

    Args:
      location: dataset path or an opened :class:`ImageSource` (reuse one to avoid re-scanning).
      batch_size: images per batch.
      training: adds the random horizontal flip (p = 0.5); shuffles and drops the remainder by
        default.
      image_size: output side; default: the ``property``/manifest size, else the first image's
        size. Images of another size are resized (shorter side) and centre-cropped when decoded.
      indices: positions (``0 .. len(source)-1``) to use, e.g. one half of
        :func:`stratified_split`; default all.
      shuffle: reshuffle every epoch (default ``training``). Random-access sources draw a full
        permutation per pass; shard sets shuffle the shard order, interleave all shards and pass
        the images through a seeded buffer of :data:`SHUFFLE_BUFFER`.
      drop_remainder: default ``training``.
      seed: makes shuffling, flips and crops reproducible.
      random_crop_from: training only: decode at this size, then take a random
        ``image_size`` crop (the architecture-search train view uses 128 -> 112).
      num_parallel_calls: decode parallelism (default ``threads``, else ``tf.data.AUTOTUNE``).
      counter: counter for skipped records when ``location`` is a path (an opened source keeps
        its own counter).
      threads: size of a private tf.data thread pool (default: TensorFlow's shared pool).

    Returns:
      ``(dataset, DatasetInfo)``; batches are ``(float32 [B, S, S, 3] in [-1, 1], int32 [B])``.

    Raises:
      ValueError: bad arguments, or no decodable image in a sample of the data
        (:func:`pocketnet_tf.data.sources.probe_decoding`).
    """
    import tensorflow as tf

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    source = open_source(location, counter=counter)
    shuffle = training if shuffle is None else shuffle
    drop_remainder = training if drop_remainder is None else drop_remainder
    size = _output_size(source, image_size)
    decode_size = _decode_size(size, random_crop_from, training)
    positions = _positions(source, indices)
    _probe_decoding_once(source)
    parallel = num_parallel_calls or threads or tf.data.AUTOTUNE
    read = _shard_images if source.kind == "shards" else _random_access_images
    images = read(source, positions, shuffle=shuffle, seed=seed, parallel=parallel, size=decode_size)
    ds = _finish(images, training=training, seed=seed, size=size, decode_size=decode_size, batch_size=batch_size,
                 drop_remainder=drop_remainder, parallel=parallel, threads=threads)
    return ds, DatasetInfo.of(source, positions, size, batch_size, drop_remainder)


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
