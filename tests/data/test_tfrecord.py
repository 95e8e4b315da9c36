"""TFRecord framing against TensorFlow's own reader/writer, the Example schema, the converter and
corrupt-record handling."""

import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.data import convert, pipeline, preprocess, tfrecord
from tests.data.data_helpers import unique_images, write_rec


def test_crc32c_known_values():
    # RFC 3720 (iSCSI) B.4 test vectors and the classic check value.
    assert tfrecord.crc32c(b"123456789") == 0xE3069283
    assert tfrecord.crc32c(bytes(32)) == 0x8A9136AA
    assert tfrecord.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert tfrecord.crc32c(bytes(range(32))) == 0x46DD794E
    assert tfrecord.crc32c(b"") == 0
    # Incremental use equals one pass.
    assert tfrecord.crc32c(b"6789", tfrecord.crc32c(b"12345")) == 0xE3069283


def test_our_writer_is_read_by_tensorflow_and_vice_versa(tmp_path):
    records = [b"", b"a", bytes(range(256)) * 3, b"x" * 1001]
    ours = tmp_path / "ours.tfrecord"
    with tfrecord.TFRecordWriter(ours) as writer:
        for r in records:
            writer.write(r)
    assert [bytes(r.numpy()) for r in tf.data.TFRecordDataset(str(ours))] == records

    theirs = tmp_path / "theirs.tfrecord"
    with tf.io.TFRecordWriter(str(theirs)) as writer:
        for r in records:
            writer.write(r)
    assert theirs.read_bytes() == ours.read_bytes()
    frames = list(tfrecord.iter_tfrecord_frames(theirs))
    assert [(n, length, problem) for n, _, length, problem in frames] == [(i, len(r), None) for i, r in enumerate(records)]


def _write_examples(path, items):
    with tfrecord.TFRecordWriter(path) as writer:
        for label, data in items:
            h, w, fmt = preprocess.probe_image(data)
            writer.write(tfrecord.make_example(data, label, height=h, width=w, fmt=fmt, source_id=f"s{label}"))


def test_example_schema_parses_with_tf(tmp_path):
    images = unique_images(2, 10)
    data = [preprocess.encode_png(im) for im in images]
    path = tmp_path / "e.tfrecord"
    _write_examples(path, [(3, data[0]), (0, data[1])])
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
        "image/source_id": tf.io.FixedLenFeature([], tf.string),
    }
    parsed = [tf.io.parse_single_example(r, spec) for r in tf.data.TFRecordDataset(str(path))]
    assert [int(p["image/class/label"]) for p in parsed] == [3, 0]
    assert bytes(parsed[0]["image/encoded"].numpy()) == data[0]
    assert parsed[0]["image/format"].numpy() == b"png" and int(parsed[0]["image/height"]) == 10
    np.testing.assert_array_equal(tf.io.decode_png(parsed[1]["image/encoded"]).numpy(), images[1])


def test_convert_recordio_to_tfrecord(tmp_path):
    labels = [0, 0, 1, 1, 1, 2]
    encoded = write_rec(tmp_path / "rec", labels, unique_images(6, 8))
    summary = convert.convert_to_tfrecord(tmp_path / "rec", tmp_path / "out.tfrecord")
    assert summary == {"out": str(tmp_path / "out.tfrecord"), "num_written": 6, "num_skipped": 0, "num_classes": 3,
                       "kind": "recordio"}
    source = tfrecord.TFRecordSource(tmp_path / "out.tfrecord")
    assert source.labels.tolist() == labels
    assert [source.read_image(i) for i in range(6)] == encoded
    assert source.source_id(5) == "out.tfrecord:5"


def test_converter_skips_undecodable_images_and_counts_them(tmp_path):
    encoded = [preprocess.encode_png(im) for im in unique_images(4, 8)]
    encoded[1] = b"\xff\xd8\xff\xe0 not really a jpeg"
    from pocketnet_tf.data import recordio

    recordio.write_insightface_rec(tmp_path / "rec", [0, 0, 1, 1], encoded, image_size=(8, 8))
    counter = pipeline.CorruptRecordCounter()
    summary = convert.convert_to_tfrecord(tmp_path / "rec", tmp_path / "o.tfrecord", counter=counter)
    assert summary["num_written"] == 3 and summary["num_skipped"] == 1 and counter.count == 1
    assert "train.rec key 2" in counter.messages[0] and "cannot decode image" in counter.messages[0]
    assert tfrecord.TFRecordSource(tmp_path / "o.tfrecord").labels.tolist() == [0, 1, 1]


def test_corrupt_data_checksum_and_truncation(tmp_path):
    data = [preprocess.encode_png(im) for im in unique_images(3, 8)]
    path = tmp_path / "c.tfrecord"
    _write_examples(path, [(0, data[0]), (1, data[1]), (1, data[2])])
    frames = list(tfrecord.iter_tfrecord_frames(path))
    blob = bytearray(path.read_bytes())
    second = frames[1][1]
    inside = blob.find(data[1]) + len(data[1]) // 2
    assert second + 12 < inside < frames[2][1]
    blob[inside] ^= 0x01  # inside record 1's image bytes: the Example still parses, only the checksum notices
    path.write_bytes(bytes(blob))
    source = tfrecord.TFRecordSource(path)
    assert source.numbers == [0, 1, 2] and source.skipped == []
    with pytest.raises(ValueError, match=rf"c\.tfrecord: record 1 at byte offset {second}: data checksum mismatch"):
        source.read_image(source.numbers.index(1))
    assert source.read_image(0) == data[0]

    truncated = tmp_path / "t.tfrecord"
    truncated.write_bytes(bytes(blob[: frames[2][1] + 30]))
    source = tfrecord.TFRecordSource(truncated)
    assert source.numbers == [0, 1]
    assert source.skipped[-1][0] == 2 and "runs past the end of the file" in source.skipped[-1][1]


def test_bad_length_checksum_stops_framing(tmp_path):
    data = [preprocess.encode_png(im) for im in unique_images(3, 8)]
    path = tmp_path / "l.tfrecord"
    _write_examples(path, [(0, data[0]), (0, data[1]), (0, data[2])])
    frames = list(tfrecord.iter_tfrecord_frames(path))
    blob = bytearray(path.read_bytes())
    blob[frames[1][1] + 9] ^= 0x10  # the length checksum of record 1
    path.write_bytes(bytes(blob))
    source = tfrecord.TFRecordSource(path)
    assert source.numbers == [0]
    assert source.skipped == [(1, f"{path}: record 1 at byte offset {frames[1][1]}: length checksum mismatch; the "
                                  f"remaining {len(blob) - frames[1][1]} bytes of the file cannot be framed")]
