"""Reading untrusted files within stated bounds: size, kind of file, JSON nesting.

Every parser of a file a user may have been handed (bundle JSON, genotype files, checkpoint
headers) reads it through these helpers, so that a small or special file cannot make the reader
allocate without bound (``/dev/zero``, a FIFO, a file growing while it is read) or recurse until
``RecursionError`` (``[[[[...``). Errors are ``ValueError`` subclasses naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

__all__ = ["MAX_JSON_DEPTH", "check_json_nesting", "loads_json", "read_bounded"]

#: Deepest JSON nesting any of the project's files needs (genotypes: 4; metadata: 4).
MAX_JSON_DEPTH = 32


def read_bounded(path, max_bytes: int, *, what: str = "file", allow_symlink: bool = True,
                 error: type[Exception] = ValueError) -> bytes:
    """The bytes of regular file ``path``, refused if larger than ``max_bytes``.

    The size is checked on the open descriptor before reading, and at most one byte more than
    that size is read (a file that grows meanwhile is refused).

    Raises:
      FileNotFoundError: no such file.
      error: a symlink (unless allowed), not a regular file (device, FIFO, directory), or too large.
    """
    path = Path(path)
    if not allow_symlink and path.is_symlink():
        raise error(f"{path}: {what} is a symbolic link; refusing to follow it")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except OSError as err:
        raise error(f"{path}: cannot open {what} ({err.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: {what} is not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{path}: {what} is {info.st_size} bytes; at most {max_bytes} are accepted")
        data = f.read(info.st_size + 1)
    if len(data) > info.st_size:
        raise error(f"{path}: {what} grew while being read")
    return data


def check_json_nesting(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raises ``ValueError`` if brackets in ``text`` (outside strings) nest deeper than
    ``max_depth``. One pass, no recursion, so it is safe on any input."""
    depth = 0
    in_string = escaped = False
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nesting deeper than {max_depth} levels at character {position}")
        elif char in "]}":
            depth -= 1


def loads_json(text, source: str, *, max_depth: int = MAX_JSON_DEPTH, error: type[Exception] = ValueError):
    """``json.loads`` of ``text`` (str or UTF-8 bytes) with a nesting limit; every failure is
    ``error`` naming ``source``. ``NaN``/``Infinity`` literals are refused (not JSON)."""
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode("utf-8")
        check_json_nesting(text, max_depth)
        return json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError as err:
        raise error(f"{source}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except (ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        raise error(f"{source}: not valid JSON ({err})") from None


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
