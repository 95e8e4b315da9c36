"""Bounded reads of untrusted files: special files, symlinks, size and JSON nesting limits."""

import os

import pytest

from pocketnet_tf import bounded


def test_read_bounded_refuses_special_files_links_and_oversize(tmp_path):
    good = tmp_path / "a.json"
    good.write_bytes(b"x" * 10)
    assert bounded.read_bounded(good, 10) == b"x" * 10
    with pytest.raises(ValueError, match=r"a.json: file is 10 bytes; at most 9 are accepted"):
        bounded.read_bounded(good, 9)
    link = tmp_path / "link.json"
    link.symlink_to(good)
    assert bounded.read_bounded(link, 10) == b"x" * 10
    with pytest.raises(ValueError, match=r"link.json: metadata is a symbolic link"):
        bounded.read_bounded(link, 10, what="metadata", allow_symlink=False)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"fifo: file is not a regular file"):
        bounded.read_bounded(fifo, 10)  # opened non-blocking: no writer needed, no hang
    if os.path.exists("/dev/zero"):
        (tmp_path / "zero").symlink_to("/dev/zero")
        with pytest.raises(ValueError, match=r"zero: file is not a regular file"):
            bounded.read_bounded(tmp_path / "zero", 1 << 20)
    with pytest.raises(FileNotFoundError, match="nothere"):
        bounded.read_bounded(tmp_path / "nothere", 10)


@pytest.mark.parametrize("text, ok", [
    ("[" * 32 + "]" * 32, True),
    ("[" * 33 + "]" * 33, False),
    ('["' + "[" * 100 + '"]', True),  # brackets inside strings do not count
    ('["\\"' + "[" * 100 + '"]', True),  # nor after an escaped quote
])
def test_json_nesting_limit(text, ok):
    if ok:
        bounded.check_json_nesting(text)
        bounded.loads_json(text, "t.json")
    else:
        with pytest.raises(ValueError, match="t.json: not valid JSON .nesting deeper than 32 levels"):
            bounded.loads_json(text, "t.json")


@pytest.mark.parametrize("raw, message", [
    (b"\xff{}", "not UTF-8 text"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"a": ' + b"1" * 5000 + b"}", "not valid JSON"),
])
def test_loads_json_errors_name_the_source(raw, message):
    class Custom(ValueError):
        pass

    with pytest.raises(Custom, match=f"m.json: .*{message}"):
        bounded.loads_json(raw, "m.json", error=Custom)
