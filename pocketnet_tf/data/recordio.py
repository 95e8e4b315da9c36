"""MXNet RecordIO (``.rec`` + ``.idx``) and the insightface face-dataset layout on top of it.

Written from the format description (spec §6.1); MXNet is not needed.

Record framing (little-endian), repeated through the ``.rec`` file::

    uint32 magic 0xCED7230A | uint32 lrec | payload | zero padding to a multiple of 4 bytes

``lrec`` holds a continuation flag in its upper 3 bits and the payload length in the lower 29.
MXNet's writer scans each payload at 4-byte aligned positions for the magic number; wherever it
occurs, the payload is cut there and the 4 magic bytes are dropped: the pieces are written as a
first fragment (flag 1), middle fragments (flag 2) and a last fragment (flag 3), each with its
own magic/lrec header (only the last one is padded; the others end on an aligned position). A
payload with no aligned magic is one record with flag 0. The reader re-joins the fragments and
puts the magic bytes back between them.

The ``.idx`` file is text, one ``<key>\\t<byte offset>`` line per record.

An image record's payload starts with the 24-byte ``IRHeader`` (``uint32 flag``, ``float32
label``, ``uint64 id``, ``uint64 id2``); if ``flag > 0`` a vector of ``flag`` float32 labels
follows (and the scalar label is ignored); the rest is the encoded image. insightface face sets
put a meta record at key 0 whose label vector ``[L0, L1]`` says that images are keys
``1 .. L0-1`` (keys ``L0 .. L1-1`` are per-identity records holding ``[first, end)`` image key
ranges), and a ``property`` text file ``num_classes,height,width`` beside ``train.rec``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pocketnet_tf.bounded import read_bounded
from pocketnet_tf.io_utils import atomic_path, write_text_atomic

__all__ = [
    "MAGIC",
    "IRHEADER_SIZE",
    "RecordIOError",
    "IRHeader",
    "encode_lrec",
    "decode_lrec",
    "frame_payload",
    "pack_irheader",
    "unpack_irheader",
    "read_index",
    "RecordIOReader",
    "RecordIOWriter",
    "read_property",
    "write_property",
    "write_insightface_rec",
    "label_int",
    "InsightFaceRecordSource",
]

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
_LREC = struct.Struct("<II")
_IR = struct.Struct("<IfQQ")
IRHEADER_SIZE = _IR.size  # 24
_MAX_LENGTH = (1 << 29) - 1


class RecordIOError(ValueError):
    """A corrupt or inconsistent record; the message names the file, the key and the byte offset."""

    def __init__(self, path, key, offset, problem: str):
        self.path = str(path)
        self.key = key
        self.offset = offset
        where = f"record key {key}" if key is not None else "record"
        at = f" at byte offset {offset}" if offset is not None else ""
        super().__init__(f"{path}: {where}{at}: {problem}")


def encode_lrec(cflag: int, length: int) -> int:
    if not 0 <= cflag <= 7:
        raise ValueError(f"continuation flag {cflag} out of range 0..7")
    if not 0 <= length <= _MAX_LENGTH:
        raise ValueError(f"record payload of {length} bytes; RecordIO allows at most {_MAX_LENGTH}")
    return (cflag << 29) | length


def decode_lrec(lrec: int) -> tuple[int, int]:
    return lrec >> 29, lrec & _MAX_LENGTH


def _pad(length: int) -> int:
    return (-length) % 4


def frame_payload(payload: bytes) -> bytes:
    """The bytes MXNet's ``RecordIOWriter::WriteRecord`` writes for one payload.

    The payload is cut wherever the magic number sits at a 4-byte aligned position (the magic
    itself is not written); the pieces carry flags 1 (first), 2 (middle), 3 (last), or 0 if
    there was no cut. Only the final piece is followed by zero padding.
    """
    payload = bytes(payload)
    if len(payload) > _MAX_LENGTH:
        raise ValueError(f"record payload of {len(payload)} bytes; RecordIO allows at most {_MAX_LENGTH}")
    out = []
    start = 0  # first byte of the current piece
    search = 0
    while True:
        i = payload.find(_MAGIC_BYTES, search)
        if i < 0:
            break
        if i % 4:
            search = i + 1
            continue
        out.append(_LREC.pack(MAGIC, encode_lrec(1 if start == 0 else 2, i - start)))
        out.append(payload[start:i])
        start = i + 4
        search = start
    last = len(payload) - start
    out.append(_LREC.pack(MAGIC, encode_lrec(3 if start else 0, last)))
    out.append(payload[start:])
    out.append(b"\0" * _pad(len(payload)))
    return b"".join(out)


@dataclass(frozen=True)
class IRHeader:
    """insightface/MXNet image-record header.

    Attributes:
      flag: number of float32 labels that follow the 24-byte header (0: scalar ``label`` is used).
      label: the scalar label, or a tuple of ``flag`` floats.
      id, id2: free 64-bit ids (insightface stores the record key in ``id``).
    """

    flag: int
    label: float | tuple[float, ...]
    id: int = 0
    id2: int = 0

    @property
    def class_id(self) -> int:
        """The class of an image record: the scalar label or the first vector element.

        Raises:
          ValueError: the label is not a whole number in ``[0, 2**24]`` (float32 holds every
            integer up to there exactly): NaN, inf, negative, huge or fractional (0.7 is not class 0).
        """
        value = self.label[0] if isinstance(self.label, tuple) else self.label
        return label_int(value, "class label", low=0)


#: Largest integer a float32 label holds exactly.
MAX_EXACT_LABEL = 1 << 24


def label_int(value: float, what: str, *, low: int = 0) -> int:
    """``value`` as an int if it is a whole number in ``[low, 2**24]``; ValueError otherwise."""
    if not (np.isfinite(value) and float(value).is_integer() and low <= value <= MAX_EXACT_LABEL):
        raise ValueError(f"{what} {value!r} is not a whole number in [{low}, {MAX_EXACT_LABEL}]")
    return int(value)


def pack_irheader(label, image: bytes = b"", *, id: int = 0, id2: int = 0) -> bytes:  # noqa: A002
    """Header + (optional label vector) + image bytes, as ``mx.recordio.pack`` lays them out."""
    if np.ndim(label) == 0:
        head = _IR.pack(0, float(label), int(id), int(id2))
        return head + bytes(image)
    vector = np.asarray(label, dtype="<f4").reshape(-1)
    if vector.size == 0:
        raise ValueError("label vector must not be empty (flag 0 means a scalar label)")
    return _IR.pack(vector.size, 0.0, int(id), int(id2)) + vector.tobytes() + bytes(image)


def _parse_irheader(payload: bytes) -> tuple[IRHeader, int]:
    """(header, offset of the image bytes); ValueError(problem) if the payload is too short."""
    if len(payload) < IRHEADER_SIZE:
        raise ValueError(f"payload of {len(payload)} bytes is shorter than the {IRHEADER_SIZE}-byte IRHeader")
    flag, label, rid, rid2 = _IR.unpack_from(payload, 0)
    if flag == 0:
        return IRHeader(0, float(label), rid, rid2), IRHEADER_SIZE
    need = IRHEADER_SIZE + 4 * flag
    if len(payload) < need:
        raise ValueError(
            f"IRHeader flag {flag} announces {flag} float32 labels ({need} bytes with the header) "
            f"but the payload has only {len(payload)} bytes"
        )
    vector = tuple(float(v) for v in np.frombuffer(payload, dtype="<f4", count=flag, offset=IRHEADER_SIZE))
    return IRHeader(flag, vector, rid, rid2), need


def unpack_irheader(payload: bytes, *, source: str = "<payload>") -> tuple[IRHeader, bytes]:
    """Splits a record payload into its :class:`IRHeader` and the remaining (image) bytes.

    Raises:
      ValueError: naming ``source`` if the payload is shorter than the header says.
    """
    try:
        header, body = _parse_irheader(payload)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    return header, payload[body:]


def read_index(idx_path) -> dict[int, int]:
    """Parses a ``.idx`` file into ``{key: byte offset}`` (file order preserved).

    Raises:
      FileNotFoundError: no such file.
      ValueError: a malformed line (names the file and line number) or a duplicate key.
    """
    idx_path = Path(idx_path)
    if not idx_path.is_file():
        raise FileNotFoundError(f"{idx_path}: RecordIO index file not found")
    index: dict[int, int] = {}
    with open(idx_path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                key, offset = int(fields[0]), int(fields[1])
                if not (0 <= key < 1 << 63 and 0 <= offset < 1 << 63):
                    raise ValueError
            except ValueError:
                raise ValueError(
                    f"{idx_path}: line {lineno}: expected '<key>\\t<byte offset>' with non-negative integers, "
                    f"got {line.rstrip()!r}"
                ) from None
            if key in index:
                raise ValueError(f"{idx_path}: line {lineno}: duplicate key {key}")
            index[key] = offset
    return index


class RecordIOReader:
    """Random access to the records of a ``.rec`` file through its ``.idx``.

    Reads use ``os.pread`` on one descriptor, so a reader may be shared by threads (tf.data's
    parallel map). Every read checks the magic number, the fragment flags and the lengths
    against the file size; problems raise :class:`RecordIOError` naming file, key and offset.
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        if not self.rec_path.is_file():
            raise FileNotFoundError(f"{self.rec_path}: RecordIO file not found")
        self._index = read_index(self.idx_path)
        self._fd = os.open(self.rec_path, os.O_RDONLY)
        self.file_size = os.fstat(self._fd).st_size

    # -- lifetime
    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()

    def __getstate__(self):
        raise TypeError("RecordIOReader holds an open file descriptor and cannot be pickled")

    # -- index
    @property
    def keys(self) -> list[int]:
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key) -> bool:
        return key in self._index

    def offset(self, key: int) -> int:
        try:
            return self._index[key]
        except KeyError:
            raise KeyError(f"{self.idx_path}: no record with key {key}") from None

    # -- reading
    def _error(self, key, offset, problem):
        return RecordIOError(self.rec_path, key, offset, problem)

    def _read_fragment_header(self, key, pos, first: bool) -> tuple[int, int]:
        head = os.pread(self._fd, 8, pos)
        if len(head) < 8:
            raise self._error(
                key, pos, f"truncated record header: {len(head)} of 8 bytes before end of file ({self.file_size} bytes)"
            )
        magic, lrec = _LREC.unpack(head)
        if magic != MAGIC:
            raise self._error(key, pos, f"bad magic 0x{magic:08X} (expected 0x{MAGIC:08X})")
        cflag, length = decode_lrec(lrec)
        if cflag > 3:
            raise self._error(key, pos, f"invalid continuation flag {cflag} (expected 0..3)")
        if first and cflag not in (0, 1):
            raise self._error(key, pos, f"record starts with continuation flag {cflag} (expected 0 or 1)")
        if not first and cflag not in (2, 3):
            raise self._error(key, pos, f"fragment of a split record has flag {cflag} (expected 2 or 3)")
        if pos + 8 + length > self.file_size:
            raise self._error(
                key, pos, f"payload of {length} bytes runs past the end of the file ({self.file_size} bytes)"
            )
        return cflag, length

    def read(self, key: int) -> bytes:
        """The complete payload of record ``key`` (fragments re-joined)."""
        if self._fd is None:
            raise ValueError(f"{self.rec_path}: reader is closed")
        offset = self.offset(key)
        pos = offset
        parts = []
        first = True
        while True:
            cflag, length = self._read_fragment_header(key, pos, first)
            data = os.pread(self._fd, length, pos + 8)
            if len(data) != length:
                raise self._error(key, pos, f"short read: {len(data)} of {length} payload bytes")
            parts.append(data)
            pos += 8 + length + _pad(length)
            if cflag in (0, 3):
                break
            parts.append(_MAGIC_BYTES)
            first = False
        return b"".join(parts)

    def read_header(self, key: int) -> IRHeader:
        """Only the :class:`IRHeader` of record ``key``: reads a few bytes unless the record is split.

        Also checks the record's framing (magic, flag, length within the file)."""
        offset = self.offset(key)
        cflag, length = self._read_fragment_header(key, offset, True)
        if cflag == 0:
            payload = os.pread(self._fd, min(length, IRHEADER_SIZE + 32), offset + 8)
            if len(payload) >= IRHEADER_SIZE:
                flag = _IR.unpack_from(payload, 0)[0]
                if IRHEADER_SIZE + 4 * flag > len(payload):
                    payload = os.pread(self._fd, min(length, IRHEADER_SIZE + 4 * flag), offset + 8)
        else:
            payload = self.read(key)
        try:
            return _parse_irheader(payload)[0]
        except ValueError as err:
            raise self._error(key, offset, str(err)) from None

    def read_record(self, key: int) -> tuple[IRHeader, bytes]:
        """``(IRHeader, image bytes)`` of record ``key``."""
        payload = self.read(key)
        try:
            header, body = _parse_irheader(payload)
        except ValueError as err:
            raise self._error(key, self.offset(key), str(err)) from None
        return header, payload[body:]


class RecordIOWriter:
    """Writes a ``.rec`` and its ``.idx`` atomically (both appear only when the writer closes cleanly).

    Use as a context manager::

        with RecordIOWriter("train.rec") as w:
            w.write(0, payload)
    """

    def __init__(self, rec_path, idx_path=None):
        self.rec_path = Path(rec_path)
        self.idx_path = Path(idx_path) if idx_path is not None else self.rec_path.with_suffix(".idx")
        self._stack = contextlib.ExitStack()
        self._rec = self._idx = None
        self._keys: set[int] = set()
        self._pos = 0

    def __enter__(self):
        tmp_rec = self._stack.enter_context(atomic_path(self.rec_path))
        tmp_idx = self._stack.enter_context(atomic_path(self.idx_path))
        self._rec = open(tmp_rec, "wb")  # noqa: SIM115 - closed in __exit__
        self._idx = open(tmp_idx, "w", encoding="ascii")  # noqa: SIM115
        return self

    def __exit__(self, exc_type, exc, tb):
        for f in (self._rec, self._idx):
            if f is not None:
                if exc_type is None:
                    f.flush()
                    os.fsync(f.fileno())
                f.close()
        self._rec = self._idx = None
        return self._stack.__exit__(exc_type, exc, tb)

    def write(self, key: int, payload: bytes) -> int:
        """Appends one record; returns its byte offset."""
        if self._rec is None:
            raise ValueError(f"{self.rec_path}: writer is not open (use it as a context manager)")
        key = int(key)
        if key < 0:
            raise ValueError(f"{self.rec_path}: record key must be >= 0, got {key}")
        if key in self._keys:
            raise ValueError(f"{self.rec_path}: duplicate record key {key}")
        framed = frame_payload(payload)
        offset = self._pos
        self._rec.write(framed)
        self._idx.write(f"{key}\t{offset}\n")
        self._pos += len(framed)
        self._keys.add(key)
        return offset


# ---------------------------------------------------------------------------------------------
# insightface layout: train.rec / train.idx / property


def read_property(path) -> tuple[int, int, int]:
    """Parses an insightface ``property`` file: ``num_classes,height,width``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: property file not found")
    text = read_bounded(path, 4096, what="property file").decode("utf-8", errors="replace").strip()
    fields = [f.strip() for f in text.split(",")]
    try:
        if len(fields) != 3 or any(len(f) > 9 for f in fields):
            raise ValueError
        values = tuple(int(f) for f in fields)
        if min(values) <= 0 or values[0] > MAX_EXACT_LABEL:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"{path}: expected 'num_classes,height,width' (positive integers, at most {MAX_EXACT_LABEL} classes "
            f"and 9 digits each), got {text[:80]!r}"
        ) from None
    return values  # type: ignore[return-value]


def write_property(path, num_classes: int, height: int, width: int) -> None:
    write_text_atomic(path, f"{int(num_classes)},{int(height)},{int(width)}\n")


def _checked_class_count(out_dir: Path, labels: np.ndarray, num_classes: int | None) -> int:
    """``num_classes`` (default ``max(labels) + 1``) after checking ``labels`` can be written: not
    empty, grouped by class, in range, every key exact as a float32 label."""
    n = int(labels.size)
    if n == 0:
        raise ValueError(f"{out_dir}: refusing to write a record file with no images")
    if labels.min() < 0 or np.any(np.diff(labels) < 0):
        raise ValueError(f"{out_dir}: labels must be >= 0 and non-decreasing (images grouped by class)")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    if labels.max() >= num_classes:
        raise ValueError(f"{out_dir}: label {int(labels.max())} out of range for num_classes={num_classes}")
    if labels.max() >= 1 << 24 or n + num_classes + 1 >= 1 << 24:
        raise ValueError(f"{out_dir}: too many images/classes for exact float32 labels")
    return num_classes


def _write_insightface_records(writer: RecordIOWriter, out_dir: Path, labels: np.ndarray, images: Iterable[bytes],
                               num_classes: int) -> None:
    """The meta record (key 0: ``[L0, L1]``), the images (keys ``1 .. n``), then one record per
    class (keys ``L0 .. L1-1``: its ``[first key, end key)``)."""
    n = int(labels.size)
    first_key = 1 + np.searchsorted(labels, np.arange(num_classes), side="left")
    end_key = 1 + np.searchsorted(labels, np.arange(num_classes), side="right")
    l0 = n + 1
    l1 = l0 + num_classes
    count = 0
    writer.write(0, pack_irheader([l0, l1], b"", id=0, id2=0))
    for count, image in enumerate(images, 1):
        if count > n:
            raise ValueError(f"{out_dir}: more images than the {n} labels given")
        writer.write(count, pack_irheader(float(labels[count - 1]), image, id=count))
    if count != n:
        raise ValueError(f"{out_dir}: {count} images for {n} labels")
    for c in range(num_classes):
        writer.write(l0 + c, pack_irheader([first_key[c], end_key[c]], b"", id=l0 + c))


def write_insightface_rec(
    out_dir,
    labels: Sequence[int],
    images: Iterable[bytes],
    *,
    image_size: tuple[int, int],
    num_classes: int | None = None,
    prefix: str = "train",
) -> dict:
    """Writes ``<prefix>.rec``/``.idx`` and ``property`` in the insightface layout.

    Record 0 is the meta record ``[L0, L1]``; images are keys ``1 .. n`` in the given order;
    keys ``L0 .. L1-1`` are one record per class holding its ``[first key, end key)`` range.

    Args:
      out_dir: destination directory (created).
      labels: class id of each image; must be non-decreasing (images grouped by identity in
        class order, as in the insightface files).
      images: the encoded images (JPEG/PNG bytes), same length as ``labels``; may be a generator.
      image_size: ``(height, width)`` written to ``property``.
      num_classes: defaults to ``max(labels) + 1``.

    Returns:
      ``{"num_images", "num_classes", "rec", "idx", "property"}``.
    """
    out_dir = Path(out_dir)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    num_classes = _checked_class_count(out_dir, labels, num_classes)
    rec_path = out_dir / f"{prefix}.rec"
    out_dir.mkdir(parents=True, exist_ok=True)
    with RecordIOWriter(rec_path) as writer:
        _write_insightface_records(writer, out_dir, labels, images, num_classes)
    write_property(out_dir / "property", num_classes, image_size[0], image_size[1])
    return {
        "num_images": int(labels.size),
        "num_classes": int(num_classes),
        "rec": str(rec_path),
        "idx": str(rec_path.with_suffix(".idx")),
        "property": str(out_dir / "property"),
    }


class InsightFaceRecordSource:
    """An insightface record set (``<dir>/train.rec``, ``train.idx``, optional ``property``) as an
    image source for the pipeline.

    Opening reads the meta record (key 0) to find the image keys, then every image record's
    header to learn its label. Records whose header cannot be read (bad magic, truncation, ...)
    are left out and listed in :attr:`skipped` as ``(key, message)``; the image bytes themselves
    are read (and checked) later by :meth:`read_image`.

    Attributes:
      location: the directory.
      keys: record keys of the usable images, in index order.
      labels: int64 class ids, aligned with ``keys``.
      num_classes_declared: from ``property`` (None without one).
      image_size: ``(height, width)`` from ``property`` (None without one).
    """

    kind = "recordio"

    def __init__(self, directory, *, prefix: str = "train"):
        self.location = Path(directory)
        if not self.location.is_dir():
            raise FileNotFoundError(f"{self.location}: dataset directory not found")
        self.reader = RecordIOReader(self.location / f"{prefix}.rec", self.location / f"{prefix}.idx")
        prop = self.location / "property"
        self.num_classes_declared = None
        self.image_size = None
        if prop.exists():
            nc, h, w = read_property(prop)
            self.num_classes_declared, self.image_size = nc, (h, w)
        image_keys = self._image_keys()
        self.skipped: list[tuple[int, str]] = []
        keys, labels = [], []
        for key in image_keys:
            try:
                label = self._read_label(key)
            except RecordIOError as err:
                self.skipped.append((key, str(err)))
                continue
            keys.append(key)
            labels.append(label)
        self.keys = keys
        self.labels = np.asarray(labels, dtype=np.int64)

    def _read_label(self, key: int) -> int:
        header = self.reader.read_header(key)
        try:
            return header.class_id
        except ValueError as err:
            raise RecordIOError(self.reader.rec_path, key, self.reader.offset(key), str(err)) from None

    def _image_keys(self) -> list[int]:
        reader = self.reader
        if 0 not in reader:
            return reader.keys
        try:
            meta = reader.read_header(0)
        except RecordIOError as err:
            raise ValueError(f"cannot read the meta record, so the record layout is unknown: {err}") from None
        if meta.flag == 0:
            return reader.keys
        if meta.flag < 2:
            raise ValueError(f"{reader.rec_path}: meta record (key 0) has a {meta.flag}-element label; expected [L0, L1]")
        try:
            l0 = label_int(meta.label[0], "L0", low=1)
        except ValueError as err:
            raise ValueError(f"{reader.rec_path}: meta record (key 0): {err}") from None
        # Counted over the index (never materialising 1..L0-1, which a corrupt L0 makes huge).
        present = sum(1 for k in reader.keys if 1 <= k < l0)
        if present != l0 - 1:
            first = list(itertools.islice((k for k in itertools.count(1) if k not in reader), 5))
            raise ValueError(
                f"{reader.idx_path}: the meta record says images are keys 1..{l0 - 1}, but {l0 - 1 - present} of them "
                f"are missing from the index (first: {first})"
            )
        return list(range(1, l0))

    def __len__(self) -> int:
        return len(self.keys)

    def describe(self, i: int) -> str:
        key = self.keys[i]
        return f"{self.reader.rec_path} key {key} (byte offset {self.reader.offset(key)})"

    def source_id(self, i: int) -> str:
        return f"{self.reader.rec_path.name}:{self.keys[i]}"

    def read_image(self, i: int) -> bytes:
        """Encoded image bytes of the ``i``-th usable record (raises :class:`RecordIOError`)."""
        _, image = self.reader.read_record(self.keys[i])
        return image

    def close(self) -> None:
        self.reader.close()
