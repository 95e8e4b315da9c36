"""Atomic writes under faults: nothing already written is lost, every failure names its path."""

import errno
import json
import os

import pytest

from pocketnet_tf.io_utils import (
    OutputError, atomic_path, check_output, ensure_dir, remove_stale_temporaries, write_bytes_atomic,
    write_json_atomic,
)
from tests.fault_injection import fill, remount_read_only, tmpfs


def _strict(text):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_non_finite_becomes_null(tmp_path):
    write_json_atomic(tmp_path / "r.json", {"loss": float("nan"), "h": {"1": [1.5, float("inf"), -float("inf")]}})
    assert _strict((tmp_path / "r.json").read_text()) == {"loss": None, "h": {"1": [1.5, None, None]}}


def test_file_in_the_way_names_the_path_and_keeps_it(tmp_path):
    (tmp_path / "run").write_text("precious")
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'run' / 'results.json'}: .*directory"):
        write_json_atomic(tmp_path / "run" / "results.json", {})
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'run'}: exists and is not a directory"):
        ensure_dir(tmp_path / "run")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check_output(tmp_path / "run", directory=True)
    assert (tmp_path / "run").read_text() == "precious"


def test_symlink_target_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "old.txt").write_text("old")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with atomic_path(tmp_path / "link") as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert (tmp_path / "link").is_symlink() and os.readlink(tmp_path / "link") == str(tmp_path / "real")
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    write_bytes_atomic(tmp_path / "w.h5", b"good")
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "w.h5") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert (tmp_path / "w.h5").read_bytes() == b"good" and sorted(os.listdir(tmp_path)) == ["w.h5"]


def test_stale_temporaries_removed_old_directory_restored(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / ".ckpt-0000000012.weights.h5.abc123.tmp.weights.h5").write_bytes(b"half")
    (ckpt / "ckpt-0000000006.weights.h5").write_bytes(b"good")
    (ckpt / ".hidden_user_file").write_text("keep")
    (tmp_path / ".epoch_002.xyz.tmp").mkdir()
    (tmp_path / ".epoch_002.xyz.tmp" / "saved_model.pb").write_bytes(b"half")
    (tmp_path / ".epoch_001.old").mkdir()  # killed between the two renames: epoch_001 is missing
    (tmp_path / ".epoch_001.old" / "saved_model.pb").write_bytes(b"teacher")
    (tmp_path / "bundle").mkdir()
    (tmp_path / ".bundle.old").mkdir()  # killed after the new bundle was in place

    lines = remove_stale_temporaries(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["bundle", "checkpoints", "epoch_001"]
    assert (tmp_path / "epoch_001" / "saved_model.pb").read_bytes() == b"teacher"
    assert len(lines) == 3 and any(f"restored {tmp_path / 'epoch_001'}" in line for line in lines)
    # Not recursive unless asked; a target filter only touches that target's leftovers.
    assert len(os.listdir(ckpt)) == 3
    assert remove_stale_temporaries(ckpt, target="other") == []
    assert remove_stale_temporaries(ckpt) == [
        f"removed stale temporary {ckpt / '.ckpt-0000000012.weights.h5.abc123.tmp.weights.h5'} "
        "(left by an interrupted write)"]
    assert sorted(os.listdir(ckpt)) == [".hidden_user_file", "ckpt-0000000006.weights.h5"]


def test_disk_full_names_the_path_and_keeps_the_previous_file(tmp_path):
    with tmpfs(tmp_path / "small", 64) as small:
        write_bytes_atomic(small / "state.json", b'{"step": 6}')
        fill(small)
        with pytest.raises(OutputError, match=f"cannot write {small / 'state.json'}: No space left") as info:
            write_bytes_atomic(small / "state.json", b"x" * 8192)
        assert info.value.errno == errno.ENOSPC
        assert (small / "state.json").read_bytes() == b'{"step": 6}'
        assert sorted(os.listdir(small)) == ["filler", "state.json"]


def test_read_only_names_the_path(tmp_path):
    with tmpfs(tmp_path / "ro", 64) as ro:
        (ro / "out").mkdir()
        remount_read_only(ro)
        with pytest.raises(OutputError, match=f"cannot write {ro / 'out' / 'r.json'}: Read-only file system"):
            write_json_atomic(ro / "out" / "r.json", {})
        with pytest.raises(OutputError, match=f"cannot write {ro / 'out'}: Read-only"):
            ensure_dir(ro / "out", probe=True)
        ensure_dir(ro / "out")  # exists: fine without the probe
