"""Small file helpers: atomic writes so that nothing already written is lost on a crash.

A write goes to a hidden temporary beside its target (``.<name>.<random>.tmp<suffix>``) and is
renamed over it; a directory target is first moved aside to ``.<name>.old``. A process killed
in between leaves such a temporary (or the ``.old`` copy) behind: :func:`remove_stale_temporaries`
cleans them up (and moves an orphaned ``.old`` back) when the next run starts.

Failures to write (read-only directory, a file where a directory is expected, disk full) raise
:class:`OutputError`, an ``OSError`` whose one-line message names the target path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path


class OutputError(OSError):
    """An output path cannot be written; the message names it and the reason (one line)."""

    def __str__(self):
        return str(self.strerror)


def _output_error(path: Path, err: OSError) -> OutputError:
    reason = err.strerror or str(err)
    if err.errno == errno.EEXIST or isinstance(err, (FileExistsError, NotADirectoryError)):
        reason = f"{reason} (a file is in the way of a directory)"
    return OutputError(err.errno, f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_path(path, *, suffix: str | None = None):
    """Yields a temporary path beside ``path``; on success renames it over ``path``.

    Works for files and directories (e.g. a SavedModel). On an exception the temporary
    is removed and any existing ``path`` is left untouched. A ``path`` that is a symlink is
    written through: its target is replaced and the link kept. An ``OSError`` (read-only,
    disk full, a file in the way) becomes :class:`OutputError` naming ``path``.
    """
    path = Path(path)
    if path.is_symlink() and path.exists():
        path = Path(os.path.realpath(path))
    with _named_output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        sfx = suffix if suffix is not None else "".join(path.suffixes)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{sfx}", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
    tmp = Path(tmp)
    try:
        # Inside the caller's block a missing file is about something it reads: left as it is.
        with _named_output_errors(path, passthrough=(FileNotFoundError,)):
            yield tmp
        with _named_output_errors(path):
            _rename_into_place(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink()


@contextlib.contextmanager
def _named_output_errors(path: Path, passthrough: tuple = ()):
    try:
        yield
    except (OutputError, *passthrough):
        raise
    except OSError as err:
        raise _output_error(path, err) from err


def _rename_into_place(tmp: Path, path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        old = path.with_name(f".{path.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


_TEMPORARY = re.compile(r"^\..+\.tmp")


def remove_stale_temporaries(directory, *, recursive: bool = False, target: str | None = None) -> list[str]:
    """Removes what killed atomic writes left in ``directory``; returns the log lines.

    Hidden ``.<name>.<random>.tmp*`` files/directories are deleted; a ``.<name>.old`` directory
    whose ``<name>`` is missing (killed between the two renames of a directory replacement) is
    moved back into place, one whose ``<name>`` exists is deleted. Only call this when no other
    process writes into ``directory`` (at the start of a run, by the chief); ``target``: only the
    leftovers of writes to ``directory/target``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    lines = []
    for item in sorted(directory.iterdir()):
        if item.is_symlink() or (target is not None and not item.name.startswith(f".{target}.")):
            continue
        if _TEMPORARY.match(item.name):
            shutil.rmtree(item) if item.is_dir() else item.unlink()
            lines.append(f"removed stale temporary {item} (left by an interrupted write)")
        elif item.name.startswith(".") and item.name.endswith(".old") and item.is_dir():
            original = item.with_name(item.name[1:-4])
            if original.exists():
                shutil.rmtree(item)
                lines.append(f"removed stale copy {item} (left by an interrupted replacement)")
            else:
                os.replace(item, original)
                lines.append(f"restored {original} from {item} (an interrupted replacement)")
        elif recursive and item.is_dir():
            lines.extend(remove_stale_temporaries(item, recursive=True))
    return lines


def ensure_dir(path, *, probe: bool = False) -> Path:
    """Creates the output directory ``path`` (and parents); :class:`OutputError` naming it if that
    is impossible (a file in the way, read-only, disk full). ``probe``: also create and delete a
    file in it, so a read-only directory fails before any work is done."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(errno.ENOTDIR, f"cannot write {path}: exists and is not a directory")
    with _named_output_errors(path):
        path.mkdir(parents=True, exist_ok=True)
        if probe:
            with tempfile.NamedTemporaryFile(prefix=f".{path.name}.probe.", suffix=".tmp", dir=path):
                pass
    return path


def check_output(path, *, directory: bool) -> None:
    """An output that will be replaced as a whole (a ``directory`` or a file, or a symlink to one)
    may exist or not, must be of that kind, and its parent must be writable; otherwise
    :class:`OutputError` naming it. Call it before long work, so the work is not lost."""
    path = Path(path)
    if path.exists() and path.is_dir() != directory:
        what = "exists and is not a directory" if directory else "is a directory"
        raise OutputError(errno.ENOTDIR if directory else errno.EISDIR, f"cannot write {path}: {what}")
    ensure_dir(Path(os.path.realpath(path)).parent, probe=True)


def json_safe(obj):
    """``obj`` with every non-finite float (NaN, +-Inf) replaced by ``None`` (JSON ``null``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_bytes_atomic(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path, obj, *, indent: int = 2) -> None:
    """Writes ``obj`` as strict JSON: non-finite floats become ``null`` (never a bare ``NaN``)."""
    write_text_atomic(path, json.dumps(json_safe(obj), indent=indent, sort_keys=False, allow_nan=False) + "\n")


def attach_log_file(path):
    """Copies absl INFO logging into ``path`` (a run's train.log / search.log); returns the handler
    so the caller can remove it when the run ends."""
    import logging as std_logging

    from absl import logging

    with _named_output_errors(Path(path)):
        handler = std_logging.FileHandler(path)
    handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.get_absl_logger().addHandler(handler)
    logging.set_verbosity(logging.INFO)
    return handler
