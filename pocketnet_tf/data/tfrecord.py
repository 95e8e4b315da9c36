"""TFRecord files of face images: writer, random-access reader and the Example schema (the
converters are in :mod:`pocketnet_tf.data.convert`).

Framing (TensorFlow's TFRecord), repeated::

    uint64 length | uint32 masked_crc32c(length bytes) | data | uint32 masked_crc32c(data)

Each record's data is a serialised ``tf.train.Example`` with the features

    image/encoded      bytes   JPEG or PNG
    image/format       bytes   b"jpeg" / b"png"
    image/class/label  int64   class id, 0 .. num_classes-1
    image/height       int64
    image/width        int64
    image/source_id    bytes   where the image came from (record key / relative path)

Files written here are read by ``tf.data.TFRecordDataset`` and the reader here reads files
written by ``tf.io.TFRecordWriter`` (both directions are tested). The reader is our own so that
a record with a bad checksum or an undecodable image is skipped and counted instead of ending
the epoch with a DataLossError.
"""

from __future__ import annotations

import contextlib
import os
import struct
from pathlib import Path

import numpy as np

from pocketnet_tf.io_utils import atomic_path

__all__ = [
    "crc32c",
    "masked_crc32c",
    "TFRecordWriter",
    "iter_tfrecord_frames",
    "make_example",
    "parse_example",
    "TFRecordSource",
    "read_record_at",
    "TFRECORD_SUFFIXES",
]

TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfrec")

# ---------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, slicing-by-8 tables.


def _make_tables():
    base = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        base.append(c)
    tables = [base]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[i] >> 8) ^ base[prev[i] & 0xFF] for i in range(256)])
    return tables


_T = _make_tables()
_U32x2 = struct.Struct("<II")


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data`` (``crc`` continues a previous value)."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    crc ^= 0xFFFFFFFF
    data = memoryview(data).cast("B")
    n = len(data) - len(data) % 8
    for lo, hi in _U32x2.iter_unpack(data[:n]):
        lo ^= crc
        crc = (
            t7[lo & 0xFF] ^ t6[(lo >> 8) & 0xFF] ^ t5[(lo >> 16) & 0xFF] ^ t4[lo >> 24]
            ^ t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24]
        )
    for b in data[n:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def _frame(data: bytes) -> bytes:
    length = _U64.pack(len(data))
    return length + _U32.pack(masked_crc32c(length)) + data + _U32.pack(masked_crc32c(data))


class TFRecordWriter:
    """Writes a TFRecord file atomically (it appears only when the writer closes cleanly)."""

    def __init__(self, path):
        self.path = Path(path)
        self._stack = contextlib.ExitStack()
        self._f = None
        self.count = 0
        self.offset = 0  # bytes written so far = where the next record starts

    def __enter__(self):
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._f = open(tmp, "wb")  # noqa: SIM115 - closed in __exit__
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._f is not None:
            if exc_type is None:
                self._f.flush()
                os.fsync(self._f.fileno())
            self._f.close()
            self._f = None
        return self._stack.__exit__(exc_type, exc, tb)

    def write(self, data: bytes) -> None:
        if self._f is None:
            raise ValueError(f"{self.path}: writer is not open (use it as a context manager)")
        frame = _frame(bytes(data))
        self._f.write(frame)
        self.count += 1
        self.offset += len(frame)


def iter_tfrecord_frames(path):
    """Walks the framing of a TFRecord file, checking the length checksums.

    Yields ``(record number, byte offset, data length, problem)`` where ``problem`` is None for
    a well-framed record. A bad length checksum or a truncated record ends the walk (nothing
    after it can be framed): that last item carries the problem.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        number = 0
        offset = 0
        while offset < size:
            head = f.read(12)
            if len(head) < 12:
                yield number, offset, None, f"truncated record header ({len(head)} of 12 bytes) at the end of the file"
                return
            (length,) = _U64.unpack_from(head, 0)
            (crc,) = _U32.unpack_from(head, 8)
            if crc != masked_crc32c(head[:8]):
                yield number, offset, None, (
                    f"length checksum mismatch; the remaining {size - offset} bytes of the file cannot be framed"
                )
                return
            if offset + 12 + length + 4 > size:
                yield number, offset, length, (
                    f"record of {length} bytes runs past the end of the file ({size} bytes): truncated"
                )
                return
            yield number, offset, length, None
            f.seek(length + 4, os.SEEK_CUR)
            offset += 12 + length + 4
            number += 1


def read_record_at(fd: int, offset: int) -> bytes:
    """The data of the record framed at byte ``offset`` of an open file, both checksums checked.

    Raises:
      ValueError(problem): bad length checksum, short read or data checksum mismatch.
    """
    head = os.pread(fd, 12, offset)
    if len(head) < 12:
        raise ValueError(f"truncated record header ({len(head)} of 12 bytes)")
    if _U32.unpack_from(head, 8)[0] != masked_crc32c(head[:8]):
        raise ValueError("length checksum mismatch")
    (length,) = _U64.unpack_from(head, 0)
    blob = os.pread(fd, length + 4, offset + 12)
    if len(blob) != length + 4:
        raise ValueError("short read (file changed or truncated)")
    data = blob[:length]
    if _U32.unpack_from(blob, length)[0] != masked_crc32c(data):
        raise ValueError("data checksum mismatch")
    return data


def make_example(image: bytes, label: int, *, height: int, width: int, fmt: str, source_id: str = "") -> bytes:
    """Serialised ``tf.train.Example`` for one face image (feature names in the module doc)."""
    import tensorflow as tf

    def _bytes(v):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    def _int(v):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))

    feature = {
        "image/encoded": _bytes(bytes(image)),
        "image/format": _bytes(fmt.encode("ascii")),
        "image/class/label": _int(label),
        "image/height": _int(height),
        "image/width": _int(width),
        "image/source_id": _bytes(source_id.encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example(data: bytes) -> tuple[int, bytes]:
    """``(label, encoded image)`` from a serialised Example; ValueError(problem) if unusable."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        example = tf.train.Example.FromString(bytes(data))
    except DecodeError as err:
        raise ValueError(f"not a tf.train.Example ({err})") from None
    feats = example.features.feature
    if "image/class/label" not in feats or not feats["image/class/label"].int64_list.value:
        raise ValueError("Example has no int64 'image/class/label'")
    if "image/encoded" not in feats or not feats["image/encoded"].bytes_list.value:
        raise ValueError("Example has no bytes 'image/encoded'")
    return int(feats["image/class/label"].int64_list.value[0]), feats["image/encoded"].bytes_list.value[0]


class TFRecordSource:
    """A TFRecord file of face Examples as an image source for the pipeline.

    Opening walks the file once (checks the framing and reads each Example's label); records
    that cannot be framed or parsed are left out and listed in :attr:`skipped` as
    ``(record number, message)``. :meth:`read_image` re-reads a record by offset and checks the
    data checksum.

    Attributes:
      location: the file.
      offsets, lengths: per usable record.
      labels: int64 class ids.
      num_classes_declared: None (the labels define the classes).
      image_size: None.
    """

    kind = "tfrecord"

    def __init__(self, path):
        self.location = Path(path)
        if not self.location.is_file():
            raise FileNotFoundError(f"{self.location}: TFRecord file not found")
        self.skipped: list[tuple[int, str]] = []
        self.numbers: list[int] = []
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        labels: list[int] = []
        self._fd = os.open(self.location, os.O_RDONLY)
        for number, offset, length, problem in iter_tfrecord_frames(self.location):
            if problem is not None:
                self.skipped.append((number, self._message(number, offset, problem)))
                continue
            data = os.pread(self._fd, length, offset + 12)
            try:
                label, _ = parse_example(data)
            except ValueError as err:
                self.skipped.append((number, self._message(number, offset, str(err))))
                continue
            self.numbers.append(number)
            self.offsets.append(offset)
            self.lengths.append(length)
            labels.append(label)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes_declared = None
        self.image_size = None

    def _message(self, number, offset, problem):
        return f"{self.location}: record {number} at byte offset {offset}: {problem}"

    def __len__(self) -> int:
        return len(self.offsets)

    def describe(self, i: int) -> str:
        return f"{self.location} record {self.numbers[i]} (byte offset {self.offsets[i]})"

    def source_id(self, i: int) -> str:
        return f"{self.location.name}:{self.numbers[i]}"

    def read_image(self, i: int) -> bytes:
        offset, length = self.offsets[i], self.lengths[i]
        blob = os.pread(self._fd, length + 4, offset + 12)
        if len(blob) != length + 4:
            raise ValueError(self._message(self.numbers[i], offset, "short read (file changed or truncated)"))
        data = blob[:length]
        if _U32.unpack_from(blob, length)[0] != masked_crc32c(data):
            raise ValueError(self._message(self.numbers[i], offset, "data checksum mismatch"))
        try:
            return parse_example(data)[1]
        except ValueError as err:
            raise ValueError(self._message(self.numbers[i], offset, str(err))) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()
