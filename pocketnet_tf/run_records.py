"""The record of a run's configuration: ``flags.txt`` and ``config.json`` in its directory.

They are written only once a run is accepted (after the checks that may refuse it: an existing
checkpoint without ``--resume``, a checkpoint that does not fit the model), so a refused command
never rewrites the record of the run it refused. Every accepted attempt also keeps its own copy
in ``records/attempt-NNN/`` (1, 2, ... in order), so a resumed run with changed flags does not
silently replace the record of the earlier attempts; the top-level files are the latest.
"""

from __future__ import annotations

import re
from pathlib import Path

from pocketnet_tf.io_utils import write_text_atomic

RECORDS_DIR = "records"
_ATTEMPT = re.compile(r"^attempt-(\d+)$")


def next_attempt(run_dir) -> int:
    """1 + the highest ``records/attempt-NNN`` number in ``run_dir`` (1 for a new run)."""
    records = Path(run_dir) / RECORDS_DIR
    numbers = [int(m.group(1)) for p in records.iterdir() if (m := _ATTEMPT.match(p.name))] if records.is_dir() else []
    return max(numbers, default=0) + 1


def write_run_records(run_dir, config) -> Path:
    """Writes ``config``'s ``config.json`` and ``flags.txt`` into ``records/attempt-NNN/`` and as
    the latest copies in ``run_dir``; returns the attempt directory."""
    run_dir = Path(run_dir)
    files = {"config.json": config.to_json_text(), "flags.txt": config.to_flagfile()}
    if next_attempt(run_dir) == 1:
        _keep_unnumbered_record(run_dir, files)
    attempt = run_dir / RECORDS_DIR / f"attempt-{next_attempt(run_dir):03d}"
    for name, text in files.items():
        write_text_atomic(attempt / name, text)
    for name, text in files.items():
        write_text_atomic(run_dir / name, text)
    return attempt


def _keep_unnumbered_record(run_dir: Path, names) -> None:
    """A run directory from before numbered records: its files become ``attempt-001``."""
    old = {name: (run_dir / name).read_text() for name in names if (run_dir / name).is_file()}
    for name, text in old.items():
        write_text_atomic(run_dir / RECORDS_DIR / "attempt-001" / name, text)
