"""Verification .bin reader/writer: round trip, Python-2 pickles, numpy payloads, refusal of code."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.data.bin_file import UnsafePickleError, read_bin, write_bin


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return preprocess.encode_jpeg(rng.integers(0, 256, (112, 112, 3), dtype=np.uint8))


def _py2_pickle(bins: list[bytes], issame: list[bool]) -> bytes:
    """The opcode stream Python 2's cPickle (protocol 2) writes for (list of str, list of bool)."""
    out = bytearray(b"\x80\x02")  # PROTO 2
    out += b"]q\x00("  # EMPTY_LIST, BINPUT 0, MARK
    memo = 1
    for item in bins:
        if len(item) < 256:
            out += b"U" + bytes([len(item)]) + item  # SHORT_BINSTRING (py2 str)
        else:
            out += b"T" + struct.pack("<i", len(item)) + item  # BINSTRING
        out += b"q" + bytes([memo])
        memo += 1
    out += b"e"  # APPENDS
    out += b"]q" + bytes([memo]) + b"("
    memo += 1
    out += b"".join(b"\x88" if s else b"\x89" for s in issame)  # NEWTRUE / NEWFALSE
    out += b"e\x86q" + bytes([memo]) + b"."  # APPENDS, TUPLE2, BINPUT, STOP
    return bytes(out)


def _write_marker(path):
    Path(path).write_text("code ran")
    return "payload"


class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


def test_round_trip_exact(tmp_path):
    images = [_jpeg(i) for i in range(6)]
    issame = [True, False, True]
    path = tmp_path / "lfw.bin"
    write_bin(path, images, issame)
    got_images, got_issame = read_bin(path)
    assert got_images == images
    assert got_issame.dtype == bool
    np.testing.assert_array_equal(got_issame, [True, False, True])
    # What insightface's loader does (plain pickle.load) gives the same objects: format compatible.
    bins, labels = pickle.loads(path.read_bytes())
    assert bins == images and labels == issame
    # No temporary files left beside the output.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lfw.bin"]


def test_python2_pickle_loaded_as_bytes(tmp_path):
    images = [bytes([0xFF, 0xD8, 0x80, i]) for i in range(4)] + [bytes(range(256)) * 2, b"\xff" * 300]
    issame = [False, True, True]
    raw = _py2_pickle(images, issame)
    # Non-ASCII str payloads fail the default decoding: the retry with encoding='bytes' is exercised.
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)
    path = tmp_path / "agedb_30.bin"
    path.write_bytes(raw)
    got_images, got_issame = read_bin(path)
    assert got_images == images
    np.testing.assert_array_equal(got_issame, issame)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_numpy_payloads_and_old_protocols(tmp_path, protocol):
    images = [np.frombuffer(_jpeg(i), dtype=np.uint8) for i in range(4)]
    issame = np.array([True, False])
    path = tmp_path / "cfp_fp.bin"
    path.write_bytes(pickle.dumps((images, issame), protocol=protocol))
    got_images, got_issame = read_bin(path)
    assert got_images == [a.tobytes() for a in images]
    np.testing.assert_array_equal(got_issame, [True, False])
    # numpy bool scalars and bytes under protocol 2 (pickled through _codecs.encode) also load.
    path.write_bytes(pickle.dumps(([_jpeg(0), _jpeg(1)], [np.bool_(False)]), protocol=protocol))
    got_images, got_issame = read_bin(path)
    assert got_images == [_jpeg(0), _jpeg(1)]
    np.testing.assert_array_equal(got_issame, [False])


def test_malicious_reduce_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    payload = pickle.dumps(([_Evil(_write_marker, str(marker)), b"x"], [True]), protocol=2)
    path = tmp_path / "evil.bin"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError) as info:
        read_bin(path)
    message = str(info.value)
    assert str(path) in message
    assert f"{__name__}._write_marker" in message
    assert not marker.exists()
    # The payload is live: an unrestricted load would have written the marker.
    control = tmp_path / "control.txt"
    pickle.loads(pickle.dumps(([_Evil(_write_marker, str(control)), b"x"], [True]), protocol=2))
    assert control.read_text() == "code ran"


def test_os_system_global_is_named_and_refused(tmp_path):
    marker = tmp_path / "touched"
    path = tmp_path / "evil_os.bin"
    path.write_bytes(pickle.dumps((_Evil(os.system, f"touch {marker}"), [True]), protocol=4))
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle global '(posix|os|nt)\.system'"):
        read_bin(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, message",
    [
        (np.array([object()], dtype=object), "not allowed"),  # object arrays could carry anything
        (np.zeros(2, dtype="V4"), "not allowed"),  # void/structured descriptors take arbitrary state
        ((b"a", b"b", b"c"), "expected a pickled"),
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([b"a", 5], [True]), "image 1 is a int"),
        (([b"a", b"b"], ["yes"]), "issame\\[0\\]"),
    ],
)
def test_bad_content_raises_value_error_naming_file(tmp_path, obj, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(ValueError, match=message) as info:
        read_bin(path)
    assert str(path) in str(info.value)


def test_truncated_and_missing_files(tmp_path):
    path = tmp_path / "trunc.bin"
    write_bin(path, [_jpeg(0), _jpeg(1)], [True])
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match="not a readable verification .bin") as info:
        read_bin(path)
    assert str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="nothere.bin"):
        read_bin(tmp_path / "nothere.bin")


def test_write_bin_validates_and_keeps_old_file_on_error(tmp_path):
    path = tmp_path / "x.bin"
    write_bin(path, [b"a", b"b"], [False])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="3 images for 1 pairs"):
        write_bin(path, [b"a", b"b", b"c"], [True])
    with pytest.raises(ValueError, match="image 0 is a str"):
        write_bin(path, ["a", "b"], [True])
    assert path.read_bytes() == before


# A 69-byte pickle of ([], ndarray) whose _reconstruct call asks numpy for 10**8 int8 values up
# front: before the bound, read_bin allocated ~800 MB (the array, then a 10**8-item list).
_SHAPE_BOMB = (b"\x80\x02]q\x00cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
               b"J\x00\xe1\xf5\x05\x85U\x01b\x87R\x86.")


def _refused_within_a_mebibyte(path, error, match):
    """Reads ``path`` expecting ``error`` (message matching ``match``); returns the exception after
    asserting that refusing it traced less than 1 MiB of Python allocations."""
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(error, match=match) as info:
            read_bin(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"{peak} bytes traced while refusing {path.stat().st_size}-byte {path.name}"
    return info.value


def test_declared_shape_larger_than_the_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.bin"
    path.write_bytes(_SHAPE_BOMB)
    err = _refused_within_a_mebibyte(
        path, UnsafePickleError, r"shape \(100000000,\) holds more values than the file has bytes \(69\)")
    assert str(path) in str(err)


def test_label_count_is_checked_before_the_labels_are_converted(tmp_path):
    path = tmp_path / "many_labels.bin"
    path.write_bytes(pickle.dumps(([b"a", b"b"], np.zeros(50_000, dtype=bool)), protocol=2))
    with pytest.raises(ValueError, match="2 images for 50000 pairs"):
        read_bin(path)


def test_special_files_are_refused(tmp_path):
    if not os.path.exists("/dev/zero"):
        pytest.skip("needs /dev/zero")
    link = tmp_path / "zero.bin"
    link.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="zero.bin: verification .bin file is not a regular file"):
        read_bin(link)


def test_huge_memo_index_is_refused_before_the_unpickler_sizes_its_memo(tmp_path):
    # Found by tests/test_fuzz.py --fuzz: LONG_BINPUT 10**7 in a 13-byte pickle made the unpickler
    # allocate a 10**7-slot memo (~150 MB); 2**31 would ask for tens of GB.
    path = tmp_path / "memo.bin"
    path.write_bytes(b"\x80\x02N" + b"r" + struct.pack("<I", 10_000_000) + b".")
    _refused_within_a_mebibyte(path, UnsafePickleError, r"memo.bin: pickle memo index 10000000 exceeds the file's 9 bytes")


def test_declared_lengths_beyond_the_file_are_refused_before_allocation(tmp_path):
    # Found by the --fuzz run: BINBYTES declaring 2**25 bytes in a 7-byte file made the unpickler
    # allocate the 32 MB buffer before finding the data missing (2**31 would ask for 2 GB).
    path = tmp_path / "long.bin"
    path.write_bytes(b"\x80\x02B" + struct.pack("<I", 1 << 31))
    err = _refused_within_a_mebibyte(path, ValueError, r"long.bin: not a readable verification .bin pickle")
    assert not isinstance(err, UnsafePickleError)


def test_array_state_is_checked_and_dtype_state_never_reaches_numpy(tmp_path):
    # numpy's C __setstate__ misbehaves on hostile BUILD state (SystemError; a segmentation fault
    # under the --fuzz run), so the unpickler checks an array's state and ignores a dtype's.
    reconstruct = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
    dtype = b"cnumpy\ndtype\nX\x02\x00\x00\x00u1\x89\x88\x87R"
    bad_state = b"(K\x01K\x0a\x85" + dtype + b"\x89C\x02abtb"  # 10 values announced, 2 bytes given
    path = tmp_path / "state.bin"
    path.write_bytes(b"\x80\x02(]" + reconstruct + bad_state + b"t.")
    with pytest.raises(UnsafePickleError, match=r"state.bin: .*numpy array state is not"):
        read_bin(path)
    # A dtype whose BUILD state is garbage: the state is dropped, the dtype stays numpy's own.
    path.write_bytes(b"\x80\x02(]" + dtype + b"(K\x63K\x63tb\x85t.")
    with pytest.raises(ValueError, match=r"state.bin: 0 images for 1 pairs"):
        read_bin(path)
