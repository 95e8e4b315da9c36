"""MXNet RecordIO framing, IRHeader and the insightface layout, against hand-built bytes."""

import struct

import numpy as np
import pytest

from pocketnet_tf.data import recordio
from tests.data.data_helpers import record_offset, unique_images, write_rec

MAGIC = struct.pack("<I", 0xCED7230A)


def _head(cflag, length):
    return MAGIC + struct.pack("<I", (cflag << 29) | length)


def test_frame_without_magic_is_one_padded_record():
    assert recordio.frame_payload(b"abcde") == _head(0, 5) + b"abcde" + b"\0\0\0"
    assert recordio.frame_payload(b"") == _head(0, 0)
    assert recordio.frame_payload(b"abcd") == _head(0, 4) + b"abcd"


def test_frame_splits_at_aligned_magic_like_mxnet():
    # Magic at offsets 4 and 8 (aligned) and at 13 (unaligned, must stay inside the last piece).
    payload = b"head" + MAGIC + MAGIC + b"x" + MAGIC + b"tail"
    expected = (
        _head(1, 4) + b"head"          # first piece: bytes before the first aligned magic
        + _head(2, 0)                  # empty middle piece between the two consecutive magics
        + _head(3, 9) + b"x" + MAGIC + b"tail" + b"\0\0\0"  # last piece (padded), unaligned magic kept
    )
    assert recordio.frame_payload(payload) == expected
    # Magic at offset 0 and at the very end.
    payload = MAGIC + b"abcd" + MAGIC
    assert recordio.frame_payload(payload) == _head(1, 0) + _head(2, 4) + b"abcd" + _head(3, 0)


PAYLOADS = {
    0: b"",
    1: b"plain bytes of odd length",
    2: MAGIC,
    3: MAGIC * 3,
    4: b"abcd" + MAGIC + b"efg" + MAGIC + b"h",
    5: b"a" + MAGIC + b"bcd",  # unaligned only
    7: bytes(np.random.default_rng(0).integers(0, 256, 4001, dtype=np.uint8)) + MAGIC * 2 + b"z",
}


def test_round_trip_with_magic_inside_payloads(tmp_path):
    rec = tmp_path / "x.rec"
    with recordio.RecordIOWriter(rec) as writer:
        offsets = {key: writer.write(key, data) for key, data in PAYLOADS.items()}
    lines = (tmp_path / "x.idx").read_text().splitlines()
    assert lines == [f"{k}\t{offsets[k]}" for k in PAYLOADS]
    assert rec.stat().st_size == sum(len(recordio.frame_payload(p)) for p in PAYLOADS.values())
    with recordio.RecordIOReader(rec) as reader:
        assert reader.keys == list(PAYLOADS)
        for key, data in PAYLOADS.items():
            assert reader.read(key) == data
        # Random access in any order.
        assert reader.read(4) == PAYLOADS[4] and reader.read(0) == b""


def test_writer_is_atomic_and_rejects_duplicates(tmp_path):
    rec = tmp_path / "y.rec"
    with pytest.raises(ValueError, match="duplicate record key 1"):
        with recordio.RecordIOWriter(rec) as writer:
            writer.write(1, b"a")
            writer.write(1, b"b")
    assert not rec.exists() and not (tmp_path / "y.idx").exists()
    assert list(tmp_path.iterdir()) == []


def test_irheader_layout_scalar_and_vector():
    packed = recordio.pack_irheader(3.0, b"IMG", id=7, id2=9)
    assert packed == struct.pack("<IfQQ", 0, 3.0, 7, 9) + b"IMG"
    header, body = recordio.unpack_irheader(packed)
    assert header == recordio.IRHeader(0, 3.0, 7, 9) and body == b"IMG" and header.class_id == 3
    packed = recordio.pack_irheader([5.0, 2.5], b"J")
    assert packed == struct.pack("<IfQQ", 2, 0.0, 0, 0) + struct.pack("<2f", 5.0, 2.5) + b"J"
    header, body = recordio.unpack_irheader(packed)
    assert header.flag == 2 and header.label == (5.0, 2.5) and header.class_id == 5 and body == b"J"
    with pytest.raises(ValueError, match="announces 3 float32 labels"):
        recordio.unpack_irheader(struct.pack("<IfQQ", 3, 0.0, 0, 0) + b"\0" * 8, source="s")
    with pytest.raises(ValueError, match="shorter than the 24-byte IRHeader"):
        recordio.unpack_irheader(b"\0" * 10)


def test_insightface_layout(tmp_path):
    labels = [0, 0, 0, 1, 2, 2]
    images = unique_images(6, 8)
    encoded = write_rec(tmp_path, labels, images)
    assert (tmp_path / "property").read_text() == "3,8,8\n"
    with recordio.RecordIOReader(tmp_path / "train.rec") as reader:
        assert reader.keys == list(range(10))  # meta + 6 images + 3 identity records
        assert reader.read_header(0) == recordio.IRHeader(2, (7.0, 10.0), 0, 0)
        for key in range(1, 7):
            header, image = reader.read_record(key)
            assert header == recordio.IRHeader(0, float(labels[key - 1]), key, 0)
            assert image == encoded[key - 1]
        ranges = [reader.read_header(k).label for k in (7, 8, 9)]
        assert ranges == [(1.0, 4.0), (4.0, 5.0), (5.0, 7.0)]
    source = recordio.InsightFaceRecordSource(tmp_path)
    assert source.keys == [1, 2, 3, 4, 5, 6]
    assert source.labels.tolist() == labels
    assert source.num_classes_declared == 3 and source.image_size == (8, 8)
    assert [source.read_image(i) for i in range(6)] == encoded


def test_meta_record_with_flag_zero_means_every_key_is_an_image(tmp_path):
    with recordio.RecordIOWriter(tmp_path / "train.rec") as writer:
        for key, label in [(0, 4.0), (1, 2.0), (5, 0.0)]:
            writer.write(key, recordio.pack_irheader(label, b"img%d" % key))
    source = recordio.InsightFaceRecordSource(tmp_path)
    assert source.keys == [0, 1, 5] and source.labels.tolist() == [4, 2, 0]
    assert source.read_image(2) == b"img5"


def test_bad_magic_names_file_key_and_offset(tmp_path):
    write_rec(tmp_path, [0, 0, 1, 1], unique_images(4, 8))
    offset = record_offset(tmp_path, 3)
    rec = tmp_path / "train.rec"
    data = bytearray(rec.read_bytes())
    data[offset] ^= 0xFF
    rec.write_bytes(bytes(data))
    with recordio.RecordIOReader(rec) as reader:
        with pytest.raises(recordio.RecordIOError) as err:
            reader.read(3)
        assert str(err.value).startswith(f"{rec}: record key 3 at byte offset {offset}: bad magic 0x")
        assert err.value.key == 3 and err.value.offset == offset
        assert reader.read(2)  # neighbours unaffected
    source = recordio.InsightFaceRecordSource(tmp_path)
    assert source.keys == [1, 2, 4] and source.labels.tolist() == [0, 0, 1]
    assert len(source.skipped) == 1 and source.skipped[0][0] == 3 and "bad magic" in source.skipped[0][1]


def test_truncated_file(tmp_path):
    write_rec(tmp_path, [0, 1, 2], unique_images(3, 8), num_classes=3)
    rec = tmp_path / "train.rec"
    last_image_offset = record_offset(tmp_path, 3)
    rec.write_bytes(rec.read_bytes()[: last_image_offset + 20])
    with recordio.RecordIOReader(rec) as reader:
        with pytest.raises(recordio.RecordIOError, match=r"record key 3 at byte offset \d+: payload of \d+ bytes runs "
                                                         r"past the end of the file \(\d+ bytes\)"):
            reader.read(3)
        with pytest.raises(recordio.RecordIOError, match="truncated record header"):
            reader.read(4)  # identity record now lies entirely past the end
    source = recordio.InsightFaceRecordSource(tmp_path)
    assert source.keys == [1, 2] and [k for k, _ in source.skipped] == [3]


def test_fragment_flag_errors(tmp_path):
    rec = tmp_path / "f.rec"
    rec.write_bytes(_head(2, 4) + b"abcd" + _head(1, 4) + b"abcd" + _head(0, 0))
    (tmp_path / "f.idx").write_text("0\t0\n1\t12\n")
    with recordio.RecordIOReader(rec) as reader:
        with pytest.raises(recordio.RecordIOError, match="record key 0 at byte offset 0: record starts with continuation flag 2"):
            reader.read(0)
        with pytest.raises(recordio.RecordIOError, match="fragment of a split record has flag 0"):
            reader.read(1)


def test_index_and_property_errors(tmp_path):
    (tmp_path / "a.idx").write_text("0\t0\n1 oops\n")
    with pytest.raises(ValueError, match=r"a\.idx: line 2: expected '<key>\\t<byte offset>'"):
        recordio.read_index(tmp_path / "a.idx")
    (tmp_path / "b.idx").write_text("0\t0\n0\t8\n")
    with pytest.raises(ValueError, match=r"b\.idx: line 2: duplicate key 0"):
        recordio.read_index(tmp_path / "b.idx")
    with pytest.raises(FileNotFoundError, match=r"c\.idx: RecordIO index file not found"):
        recordio.read_index(tmp_path / "c.idx")
    (tmp_path / "property").write_text("10,112\n")
    with pytest.raises(ValueError, match="property: expected 'num_classes,height,width'"):
        recordio.read_property(tmp_path / "property")
    (tmp_path / "property").write_text("85742,112,112")
    assert recordio.read_property(tmp_path / "property") == (85742, 112, 112)


def test_meta_record_pointing_at_missing_keys(tmp_path):
    with recordio.RecordIOWriter(tmp_path / "train.rec") as writer:
        writer.write(0, recordio.pack_irheader([4.0, 5.0]))
        writer.write(1, recordio.pack_irheader(0.0, b"x"))
    with pytest.raises(ValueError, match=r"images are keys 1\.\.3, but 2 of them are missing from the index"):
        recordio.InsightFaceRecordSource(tmp_path)


def test_write_insightface_rejects_unsorted_labels(tmp_path):
    with pytest.raises(ValueError, match="non-decreasing"):
        recordio.write_insightface_rec(tmp_path, [1, 0], [b"a", b"b"], image_size=(8, 8))
    with pytest.raises(ValueError, match="2 images for 3 labels"):
        recordio.write_insightface_rec(tmp_path, [0, 0, 1], [b"a", b"b"], image_size=(8, 8))
    assert not (tmp_path / "train.rec").exists()


def _records(tmp_path, entries):
    with recordio.RecordIOWriter(tmp_path / "train.rec") as writer:
        for key, payload in entries:
            writer.write(key, payload)


@pytest.mark.parametrize("label", [0.7, float("nan"), float("inf"), -1.0, 3e38])
def test_image_labels_must_be_whole_numbers(tmp_path, label):
    # 0.7 used to become class 0 silently; inf raised OverflowError, NaN a bare ValueError.
    _records(tmp_path, [(0, recordio.pack_irheader(0.0, b"ok")), (1, recordio.pack_irheader(label, b"bad")),
                        (2, recordio.pack_irheader(3.0, b"ok"))])
    source = recordio.InsightFaceRecordSource(tmp_path)
    assert source.keys == [0, 2] and source.labels.tolist() == [0, 3]
    ((key, message),) = source.skipped
    assert key == 1
    assert f"train.rec: record key 1 at byte offset {source.reader.offset(1)}: class label" in message
    assert "is not a whole number in [0, 16777216]" in message


@pytest.mark.parametrize("l0, message", [
    (1e7, r"keys 1\.\.9999999, but 9999998 of them are missing from the index \(first: \[2, 3, 4, 5, 6\]\)"),
    (float("inf"), r"meta record \(key 0\): L0 inf is not a whole number"),
    (float("nan"), r"meta record \(key 0\): L0 nan is not a whole number"),
    (2.5, r"meta record \(key 0\): L0 2.5 is not a whole number"),
])
def test_meta_record_values_are_checked_without_allocating(tmp_path, l0, message):
    import tracemalloc

    _records(tmp_path, [(0, recordio.pack_irheader([l0, 3.0])), (1, recordio.pack_irheader(0.0, b"x"))])
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message) as info:
            recordio.InsightFaceRecordSource(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(tmp_path) in str(info.value)
    assert peak < 4 << 20, f"{peak} bytes traced (a 10**7-key list was ~400 MB)"


@pytest.mark.parametrize("line", ["1\t99999999999999999999", "99999999999999999999\t0", "1\tinf", "1\tnan"])
def test_index_offsets_must_fit_a_file_position(tmp_path, line):
    (tmp_path / "x.idx").write_text(f"0\t0\n{line}\n")
    with pytest.raises(ValueError, match=r"x.idx: line 2: expected '<key>\\t<byte offset>'"):
        recordio.read_index(tmp_path / "x.idx")


@pytest.mark.parametrize("text", ["inf,112,112", "nan,112,112", "1e9,112,112", "99999999999,112,112",
                                  "99999999,112,112", "3," + "9" * 4000 + ",112"], ids=range(6))
def test_property_values_are_bounded(tmp_path, text):
    (tmp_path / "property").write_text(text)
    with pytest.raises(ValueError, match=r"property: expected 'num_classes,height,width'"):
        recordio.read_property(tmp_path / "property")
