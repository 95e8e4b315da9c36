"""Real file-system faults for tests: a small tmpfs that fills up, a read-only mount.

Mounting needs root (CAP_SYS_ADMIN); without it the tests using these fixtures are skipped with
that reason. Every mount is unmounted when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest


def _mount(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def tmpfs(path, size_kb: int):
    """A ``size_kb`` KiB tmpfs mounted at ``path`` (created) for the duration of the block."""
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = _mount("-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path))
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def remount_read_only(path) -> None:
    """Makes the tmpfs at ``path`` read-only (even root then gets EROFS)."""
    proc = _mount("-o", "remount,ro", str(path))
    assert proc.returncode == 0, proc.stderr


def fill(path) -> None:
    """Fills the file system holding ``path`` (a directory) up to the last byte."""
    with open(os.path.join(path, "filler"), "wb", buffering=0) as f:
        for block in (4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * block)
