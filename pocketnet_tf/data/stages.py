"""The tf.data stages of the input pipeline: read encoded records, decode natively with a
per-record fault count, augment and normalise.

Two readers feed one decoder:

* shard sets (:mod:`pocketnet_tf.data.shards`) are read by ``tf.data.TFRecordDataset`` inside a
  parallel, deterministic interleave over the shard files: no Python runs per image;
* random-access sources (RecordIO, folder trees, single ``.tfrecord`` files) are read by Python
  in batches of :data:`READ_BATCH` records (``os.pread``, no decoding), one ``tf.numpy_function``
  call per batch; everything after it is TensorFlow ops.

Decoding runs in a parallel deterministic ``map``; an image that does not decode is dropped by
``ignore_errors`` and found again by a sequential scan that compares each element's sequence
number with the one it expected: the positions in the gap are marked in the source counter's
mask (:meth:`CorruptRecordCounter.native_mask`), so each bad record is counted once, by
position, however many epochs read it. A sentinel closes every pass so that a bad last record
is seen too.

Exit: a ``numpy_function`` still called by a live iterator during interpreter shutdown hangs
(see ``docs/training.md``). On exit the reader stops handing out records (each pass then ends
at once) and the exit handler waits until the calls have stopped, so no call starts after the
interpreter begins to shut down.
"""

from __future__ import annotations

import atexit
import threading
import time

import numpy as np

from pocketnet_tf.data import preprocess

__all__ = ["READ_BATCH", "read_random_access", "read_shard", "decode_checked", "augment_batch"]

READ_BATCH = 64
_EXITING = threading.Event()
_CALLS = {"in_flight": 0, "last": 0.0}
_CALLS_LOCK = threading.Lock()
_registered = []
#: At exit, wait until no read call ran for this long (the passes have ended) ...
_QUIET_S = 0.25
#: ... but no longer than this.
_MAX_DRAIN_S = 20.0


def _drain_at_exit() -> None:
    """Stops the readers and waits (GIL released) until calls in flight are done and none has
    started for :data:`_QUIET_S`: on a loaded machine the tf.data threads may need a while."""
    _EXITING.set()
    deadline = time.monotonic() + _MAX_DRAIN_S
    while time.monotonic() < deadline:
        with _CALLS_LOCK:
            quiet = _CALLS["in_flight"] == 0 and time.monotonic() - _CALLS["last"] > _QUIET_S
        if quiet:
            return
        time.sleep(0.05)


def _register_exit_drain() -> None:
    with _CALLS_LOCK:
        if not _registered:
            atexit.register(_drain_at_exit)
            _registered.append(True)


def _batch_reader(source):
    def read(positions):
        with _CALLS_LOCK:
            _CALLS["in_flight"] += 1
            _CALLS["last"] = time.monotonic()
        try:
            if _EXITING.is_set():
                return np.array([], dtype=object), np.True_
            return np.array(source.read_many(positions.tolist()), dtype=object), np.False_
        finally:
            with _CALLS_LOCK:
                _CALLS["in_flight"] -= 1
                _CALLS["last"] = time.monotonic()

    return read


def read_random_access(source, order, labels, *, parallel):
    """``(seq, encoded, False, label)`` for ``seq = 0 .. len(order)-1``, record ``order[seq]`` of
    ``source`` (a failed read gives ``b""``, counted by the source and rejected by the decoder)."""
    import tensorflow as tf

    _register_exit_drain()
    read = _batch_reader(source)

    def read_batch(seqs):
        positions = tf.gather(order, seqs)
        encoded, stop = tf.numpy_function(read, [positions], [tf.string, tf.bool], stateful=False)
        encoded = tf.ensure_shape(encoded, [None])
        return seqs, encoded, tf.zeros_like(seqs, tf.bool), tf.gather(labels, positions), tf.ensure_shape(stop, [])

    ds = tf.data.Dataset.range(tf.cast(tf.size(order), tf.int64)).batch(READ_BATCH)
    ds = ds.map(read_batch, num_parallel_calls=parallel, deterministic=True)
    ds = ds.take_while(lambda seqs, encoded, last, label, stop: tf.logical_not(stop))
    return ds.map(lambda seqs, encoded, last, label, stop: (seqs, encoded, last, label)).unbatch()


_FEATURES = None


def _parse(serialized):
    import tensorflow as tf

    global _FEATURES
    if _FEATURES is None:
        _FEATURES = {"image/encoded": tf.io.FixedLenFeature([], tf.string),
                     "image/class/label": tf.io.FixedLenFeature([], tf.int64)}
    parsed = tf.io.parse_single_example(serialized, _FEATURES)
    return parsed["image/encoded"], tf.cast(parsed["image/class/label"], tf.int32)


def read_shard(path, k, num_shards: int, *, member=None):
    """``(record number, encoded, False, label)`` of one shard (record ``r`` is set position
    ``r * N + k``), only the records whose position is in ``member`` (a bool table) if given."""
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(path, buffer_size=1 << 20).enumerate()
    if member is not None:
        ds = ds.filter(lambda r, serialized: tf.gather(member, r * num_shards + tf.cast(k, tf.int64)))
    return ds.map(lambda r, serialized: (r, *_with_flag(*_parse(serialized))))


def _with_flag(encoded, label):
    import tensorflow as tf

    return encoded, tf.constant(False), label


def decode_checked(records, *, end_seq, expected_positions, mask, size: int, parallel):
    """Decodes ``(seq, encoded, last, label)`` elements; yields ``(image uint8, last, label)``
    (``last`` is always False: the pass's sentinel is filtered out here).

    Args:
      records: elements in increasing ``seq`` order.
      end_seq: the ``seq`` after the last one of this pass (the sentinel's).
      expected_positions: ``(lo, hi) -> int64 positions`` of the records a gap ``lo .. hi-1``
        stands for (those that should have been decoded).
      mask: the counter's bool variable; positions of undecodable records are set in it.
    """
    import tensorflow as tf

    blank = preprocess.encode_png(np.zeros((size, size, 3), np.uint8))  # the sentinel decodes
    sentinel = (tf.cast(end_seq, tf.int64), tf.constant(blank), tf.constant(True), tf.constant(0, tf.int32))
    records = records.concatenate(tf.data.Dataset.from_tensors(sentinel))
    decoded = records.map(lambda seq, encoded, last, label: (seq, preprocess.decode_image_tf(encoded, size), last,
                                                             label), num_parallel_calls=parallel, deterministic=True)

    def mark_gap(expected, element):
        # Usually an empty range: a scatter of nothing is cheaper than a tf.cond per element.
        seq = element[0]
        lost = expected_positions(expected, seq)
        update = mask.scatter_nd_update(lost[:, None], tf.ones_like(lost, tf.bool))
        with tf.control_dependencies([update]):
            return tf.identity(seq) + 1, element[1:]

    decoded = decoded.ignore_errors().scan(tf.constant(0, tf.int64), mark_gap)
    return decoded.filter(lambda image, last, label: tf.logical_not(last))


def augment_batch(images, labels, rnd, *, size: int, decode_size: int, training: bool):
    """A batch's random crops (when decoded larger) and horizontal flips (p = 0.5), one random
    int64 per image, then the network normalisation."""
    import tensorflow as tf

    if training and decode_size != size:
        images = tf.map_fn(lambda pair: _crop(pair[0], pair[1], size, decode_size), (images, rnd),
                           fn_output_signature=images.dtype)
    flip = tf.equal(tf.math.floormod(rnd, 2), 1) if training else tf.zeros_like(rnd, tf.bool)
    return _flip_and_normalize()(images, flip), labels


_FLIP_AND_NORMALIZE = []


def _flip_and_normalize():
    """``(uint8 batch, bool per image) -> float32 batch``, mirrored where asked, normalised;
    compiled with XLA into one pass over the batch (3x less CPU than the separate ops, which
    matters beside a ~0.15 ms JPEG decode). Normalisation is a lookup in the 256 values of
    :func:`preprocess.normalize`, so the pixels are exactly numpy's (XLA would turn the division
    into a multiplication by 1/127.5, one ulp off, 255 -> 1.0000001)."""
    import tensorflow as tf

    if not _FLIP_AND_NORMALIZE:
        table = preprocess.normalize(np.arange(256))

        @tf.function(jit_compile=True)
        def flip_and_normalize(images, flip):
            mirrored = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)
            return tf.gather(tf.constant(table), tf.cast(mirrored, tf.int32))

        _FLIP_AND_NORMALIZE.append(flip_and_normalize)
    return _FLIP_AND_NORMALIZE[0]


def _crop(image, rnd, size, decode_size):
    import tensorflow as tf

    span = decode_size - size + 1
    top = tf.cast(tf.math.floormod(tf.math.floordiv(rnd, 2), span), tf.int32)
    left = tf.cast(tf.math.floormod(tf.math.floordiv(rnd, 2 * span), span), tf.int32)
    return image[top : top + size, left : left + size, :]
