"""Verification ``.bin`` files (insightface format) with a restricted unpickler.

A ``.bin`` file is a pickled 2-tuple ``(bins, issame_list)``: ``bins`` holds 2P encoded images
(JPEG/PNG bytes of aligned 112x112 faces; images ``2k`` and ``2k+1`` form pair ``k``) and
``issame_list`` holds P booleans. The published files (LFW, CFP-FP, CFP-FF, AgeDB-30, CALFW,
CPLFW) were written by Python 2, so their image strings only load as ``bytes`` with
``encoding="bytes"``.

The original loader calls ``pickle.load`` on a downloaded file, which runs whatever the file
asks for. :func:`read_bin` instead resolves only the few globals such a file can legitimately
reference (the ``_codecs.encode`` that Python 3 uses for ``bytes`` under protocols 0-2,
``bytearray``, and numpy's array/scalar/dtype reconstructors for files whose images or labels
were stored as numpy values), each through a wrapper that checks its arguments. Any other global
(``os.system``, ``builtins.eval``, a class, ...) is refused before anything is called: the error
names the file and the refused global.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np

from pocketnet_tf.bounded import read_bounded
from pocketnet_tf.io_utils import write_bytes_atomic

#: Larger than any published verification set (the biggest is a few hundred MB).
MAX_FILE_BYTES = 4 << 30

__all__ = ["UnsafePickleError", "read_bin", "write_bin"]


class UnsafePickleError(ValueError):
    """Raised when a pickle references a global the restricted unpickler does not allow."""


# ---------------------------------------------------------------------------------------------
# Argument-checking stand-ins for the globals a .bin may reference.


def _codecs_encode(text, encoding="utf-8", errors="strict"):
    # Python 3 pickles ``bytes`` under protocols 0-2 as _codecs.encode(<latin-1 str>, "latin1").
    if not isinstance(text, str) or str(encoding).replace("-", "").lower() != "latin1":
        raise UnsafePickleError(
            f"_codecs.encode called with ({type(text).__name__}, {encoding!r}); "
            "expected (str, 'latin1')"
        )
    return text.encode("latin-1")


def _bytearray(*args):
    if len(args) == 0:
        return bytearray()
    if len(args) == 1 and isinstance(args[0], (bytes, bytearray)):
        return bytearray(args[0])
    if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin-1", "latin1"):
        return bytearray(args[0], "latin-1")
    raise UnsafePickleError(f"bytearray called with unexpected arguments {tuple(type(a).__name__ for a in args)}")


def _numpy_modules():
    core = getattr(np, "_core", None) or np.core  # numpy 2 / numpy 1
    return core.multiarray, core.numeric


def _checked_dtype(dtype):
    if not isinstance(dtype, np.dtype):
        raise UnsafePickleError(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.hasobject:
        raise UnsafePickleError(f"numpy object dtype {dtype} is not allowed")
    return dtype


def _np_dtype(spec, align=False, copy=False):
    if isinstance(spec, bytes):
        spec = spec.decode("ascii")
    if not isinstance(spec, str):
        raise UnsafePickleError(f"numpy.dtype called with a {type(spec).__name__}; expected a type string")
    dtype = np.dtype(spec, align=bool(align), copy=bool(copy))
    # Plain booleans, integers and floats only: their descriptors are numpy's built-in ones,
    # which ignore the state a later BUILD opcode may pass (flags, fields, sizes).
    if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafePickleError(f"numpy dtype {spec!r} is not allowed (only bool, integer and float)")
    return dtype


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` in a pickle: only usable as the first argument of
    ``_reconstruct`` (the real class would let a pickle call ``ndarray(...)`` directly)."""


def _np_reconstruct(subtype, shape, typecode, *, max_items: int):
    if subtype is not _NdarrayMarker:
        raise UnsafePickleError(f"numpy _reconstruct of {subtype!r} is not allowed; only numpy.ndarray")
    if typecode not in (b"b", "b"):
        raise UnsafePickleError(f"numpy _reconstruct typecode {typecode!r} is not allowed; numpy writes b'b'")
    # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + its state; a large shape here
    # would allocate before anything checks it, so it may not exceed the bytes in the file.
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise UnsafePickleError(f"numpy _reconstruct shape {shape!r} is not a tuple of non-negative ints")
    if len(shape) > 32 or int(np.prod(shape, dtype=object)) > max_items:
        raise UnsafePickleError(
            f"numpy _reconstruct shape {shape} holds more values than the file has bytes ({max_items})"
        )
    multiarray, _ = _numpy_modules()
    return multiarray._reconstruct(np.ndarray, shape, typecode)


def _np_scalar(dtype, data=None):
    multiarray, _ = _numpy_modules()
    _checked_dtype(dtype)
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"numpy scalar data must be bytes, got {type(data).__name__}")
    return multiarray.scalar(dtype, bytes(data))


def _np_frombuffer(buf, dtype, shape, order):
    _, numeric = _numpy_modules()
    _checked_dtype(dtype)
    if not isinstance(buf, (bytes, bytearray)):
        raise UnsafePickleError(f"numpy _frombuffer data must be bytes, got {type(buf).__name__}")
    return numeric._frombuffer(buf, dtype, shape, order)


_ALLOWED = {
    ("_codecs", "encode"): _codecs_encode,
    ("builtins", "bytearray"): _bytearray,
    ("__builtin__", "bytearray"): _bytearray,
    ("numpy", "ndarray"): _NdarrayMarker,
    ("numpy", "dtype"): _np_dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _np_reconstruct
    _ALLOWED[(_mod, "scalar")] = _np_scalar
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_mod, "_frombuffer")] = _np_frombuffer


def _check_array_state(array: np.ndarray, state) -> None:
    """The state numpy pickles for a plain array: (version, shape, dtype, fortran, raw bytes) whose
    byte count matches the shape, so ``__setstate__`` sees nothing it could misread."""
    ok = isinstance(state, tuple) and len(state) == 5
    if ok:
        _, shape, dtype, fortran, data = state
        ok = (isinstance(shape, tuple) and all(type(d) is int and d >= 0 for d in shape) and len(shape) <= 32
              and isinstance(dtype, np.dtype) and not dtype.hasobject and isinstance(fortran, bool)
              and isinstance(data, (bytes, bytearray))
              and int(np.prod(shape, dtype=object)) * dtype.itemsize == len(data))
    if not ok:
        raise UnsafePickleError("numpy array state is not (version, shape, dtype, fortran, raw bytes of that shape)")


class _RestrictedUnpickler(pickle._Unpickler):  # noqa: SLF001 - the Python implementation, to check BUILD
    """Python's own unpickler with an allow-list of globals, a size-checked ``_reconstruct`` and a
    checked BUILD: numpy's C ``__setstate__`` of a dtype or array misbehaves on hostile state
    (SystemError, and a segmentation fault found by fuzzing), so a dtype's state is ignored (the
    allowed dtypes are numpy's built-in ones) and an array's is checked before it is applied."""

    dispatch = dict(pickle._Unpickler.dispatch)  # noqa: SLF001

    def load_build(self):
        state, target = self.stack[-1], self.stack[-2]
        if isinstance(target, np.dtype):
            self.stack.pop()
            return
        if not isinstance(target, np.ndarray):
            raise UnsafePickleError(f"{self._source}: BUILD of a {type(target).__name__} is not allowed")
        _check_array_state(target, state)
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def __init__(self, file, *, source: str, size: int, **kwargs):
        super().__init__(file, **kwargs)
        self._source = source
        self._size = size

    def find_class(self, module, name):
        try:
            found = _ALLOWED[(module, name)]
            if found is _np_reconstruct:
                return functools.partial(_np_reconstruct, max_items=self._size)
            return found
        except KeyError:
            raise UnsafePickleError(
                f"{self._source}: refusing to unpickle global '{module}.{name}' "
                "(a verification .bin may only contain lists/tuples of bytes and booleans)"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: refusing persistent id {pid!r} in pickle")


def _check_opcodes(data: bytes, source: str) -> None:
    """Walks the opcodes once (no objects built) before the unpickler sees them. The unpickler
    allocates what an opcode declares before reading it: a 7-byte ``BINBYTES`` of 2**31 bytes
    asks for 2 GB, a 9-byte ``LONG_BINPUT 10**7`` sizes its memo to ~150 MB. Here every declared
    length must be present in the file and every memo index within its size."""
    limit = len(data)
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= int(arg) <= limit:
                raise UnsafePickleError(f"{source}: pickle memo index {arg} exceeds the file's {limit} bytes")
    except UnsafePickleError:
        raise
    except Exception as err:  # truncated argument, unknown opcode, no STOP, ...
        raise ValueError(f"{source}: not a readable verification .bin pickle ({type(err).__name__}: {err})") from None


def _restricted_loads(data: bytes, source: str, encoding: str):
    _check_opcodes(data, source)
    return _RestrictedUnpickler(io.BytesIO(data), source=source, size=len(data), encoding=encoding).load()


# ---------------------------------------------------------------------------------------------


def _as_image_bytes(item, index: int, source: str) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype in (np.uint8, np.int8) and item.ndim == 1:
        return item.tobytes()
    raise ValueError(
        f"{source}: image {index} is a {type(item).__name__}; expected encoded image bytes"
    )


def _as_bool(value, index: int, source: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    raise ValueError(f"{source}: issame[{index}] is {value!r}; expected a boolean")


def read_bin(path) -> tuple[list[bytes], np.ndarray]:
    """Reads an insightface verification ``.bin`` without running code from it.

    Args:
      path: the ``.bin`` file.

    Returns:
      ``(images, issame)``: 2P encoded images as ``bytes`` (pair ``k`` is ``images[2k]``,
      ``images[2k+1]``) and a bool array of P labels.

    Raises:
      FileNotFoundError: the file does not exist.
      UnsafePickleError: the pickle references a global outside the allow-list (names the file
        and the global; nothing is called).
      ValueError: the file is not a pickle of ``(images, issame)`` with ``len(images) == 2P``.
    """
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise FileNotFoundError(f"{source}: verification .bin file not found")
    data = read_bounded(path, MAX_FILE_BYTES, what="verification .bin file")
    try:
        try:
            obj = _restricted_loads(data, source, encoding="ASCII")
        except UnicodeDecodeError:
            # Python-2 str objects holding JPEG bytes: load them as bytes (as insightface does).
            obj = _restricted_loads(data, source, encoding="bytes")
    except UnsafePickleError as err:
        msg = str(err)
        raise UnsafePickleError(msg if msg.startswith(source) else f"{source}: {msg}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, struct.error,
            KeyError, AttributeError, OverflowError, MemoryError) as err:
        raise ValueError(f"{source}: not a readable verification .bin pickle ({type(err).__name__}: {err})") from None

    if not isinstance(obj, (tuple, list)) or len(obj) != 2:
        raise ValueError(f"{source}: expected a pickled (images, issame) pair, got {type(obj).__name__}")
    bins, issame = obj
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple, np.ndarray)):
        raise ValueError(
            f"{source}: expected lists of images and labels, got {type(bins).__name__} and {type(issame).__name__}"
        )
    # Counts are compared before any conversion, so a huge label array is refused without copies.
    pairs = issame.size if isinstance(issame, np.ndarray) else len(issame)
    if len(bins) != 2 * pairs:
        raise ValueError(f"{source}: {len(bins)} images for {pairs} pairs; expected exactly {2 * pairs}")
    if isinstance(issame, np.ndarray):
        issame = issame.reshape(-1).tolist()
    images = [_as_image_bytes(item, i, source) for i, item in enumerate(bins)]
    labels = np.array([_as_bool(v, i, source) for i, v in enumerate(issame)], dtype=bool)
    return images, labels


def write_bin(path, images, issame) -> None:
    """Writes ``(images, issame)`` as an insightface-compatible ``.bin`` file, atomically.

    The pickle (protocol 4) contains only a tuple, lists, ``bytes`` and booleans, so it needs no
    global at all and loads with :func:`read_bin` and with insightface's own loader.

    Args:
      path: destination ``.bin``.
      images: 2P encoded images (bytes); pair ``k`` is ``images[2k]``, ``images[2k+1]``.
      issame: P booleans.
    """
    path = Path(path)
    images = [_as_image_bytes(item, i, str(path)) for i, item in enumerate(images)]
    labels = [_as_bool(v, i, str(path)) for i, v in enumerate(np.asarray(issame).reshape(-1).tolist())]
    if len(images) != 2 * len(labels):
        raise ValueError(f"{path}: {len(images)} images for {len(labels)} pairs; expected exactly {2 * len(labels)}")
    if not labels:
        raise ValueError(f"{path}: refusing to write a .bin with no pairs")
    write_bytes_atomic(os.fspath(path), pickle.dumps((images, labels), protocol=4))
