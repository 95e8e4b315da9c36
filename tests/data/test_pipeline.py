"""The tf.data pipeline: values against the decoded records, flip only in training, corrupt
records skipped and counted, errors before training, the stratified search split."""

import numpy as np
import pytest

from pocketnet_tf.data import convert, folder, pipeline, preprocess, recordio, tfrecord
from tests.data.data_helpers import collect, pixels, png_bytes, record_offset, unique_images, write_rec

LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3]


@pytest.fixture
def rec_dir(tmp_path):
    images = unique_images(len(LABELS), 12)
    write_rec(tmp_path, LABELS, images)
    return tmp_path, images


def test_eval_pipeline_equals_decoded_records(rec_dir):
    path, images = rec_dir
    ds, info = pipeline.build_dataset(path, batch_size=4, training=False)
    assert (info.kind, info.num_classes, info.num_images, info.image_size) == ("recordio", 4, 10, 12)
    assert info.drop_remainder is False and info.steps_per_epoch == 3
    x, y = collect(ds)
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert y.tolist() == LABELS  # no shuffle: record order
    np.testing.assert_array_equal(pixels(x), images)
    np.testing.assert_array_equal(x, preprocess.normalize(images))
    assert x.min() == -1.0 and x.max() == 1.0  # the helper images hold 0 and 255
    assert info.corrupt.count == 0


def test_training_flips_about_half_and_keeps_each_record_once(tmp_path):
    labels = np.repeat(np.arange(8), 8)
    images = unique_images(labels.size, 8, seed=3)
    write_rec(tmp_path, labels, images)
    ds, info = pipeline.build_dataset(tmp_path, batch_size=10, training=True, seed=5, drop_remainder=False)
    assert info.drop_remainder is False
    x, y = collect(ds)
    plain = images
    flipped = plain[:, :, ::-1]
    seen, n_flipped = [], 0
    for img, label in zip(pixels(x), y):
        match = np.flatnonzero(np.all(plain == img, axis=(1, 2, 3)))
        if match.size == 0:
            match = np.flatnonzero(np.all(flipped == img, axis=(1, 2, 3)))
            n_flipped += 1
        assert match.size == 1
        seen.append(int(match[0]))
        assert label == labels[match[0]]
    assert sorted(seen) == list(range(labels.size))
    assert seen != sorted(seen)  # shuffled
    assert 16 <= n_flipped <= 48  # p = 0.5 over 64 images (binomial, > 4 sigma margin)
    # Same seed -> same epoch; the next iteration reshuffles and redraws flips.
    x2, _ = collect(pipeline.build_dataset(tmp_path, batch_size=10, training=True, seed=5, drop_remainder=False)[0])
    np.testing.assert_array_equal(x, x2)
    x3, _ = collect(ds)
    assert not np.array_equal(x, x3)


def test_drop_remainder_default_in_training(rec_dir):
    path, _ = rec_dir
    ds, info = pipeline.build_dataset(path, batch_size=4, training=True, seed=0)
    assert info.drop_remainder and info.steps_per_epoch == 2
    shapes = [tuple(x.shape) for x, _ in ds]
    assert shapes == [(4, 12, 12, 3), (4, 12, 12, 3)]


def test_resize_and_random_crop(rec_dir):
    path, images = rec_dir
    ds, info = pipeline.build_dataset(path, batch_size=10, training=False, image_size=8)
    x, _ = collect(ds)
    assert info.image_size == 8
    expected = [preprocess.normalize(preprocess.decode_image(b, size=8)) for b in png_bytes(images)]
    # The pipeline resizes with TensorFlow, the reference with PIL: both reducing bilinear filters
    # rounded to uint8, so they differ by at most one intensity level.
    np.testing.assert_allclose(x, np.stack(expected), rtol=0, atol=1.001 / 127.5)

    ds, _ = pipeline.build_dataset(path, batch_size=10, training=True, image_size=10, random_crop_from=14, seed=1,
                                   drop_remainder=False)
    x, y = collect(ds)
    assert x.shape == (10, 10, 10, 3)
    big = {i: preprocess.decode_image_tf(b, 14).numpy() for i, b in enumerate(png_bytes(images))}
    offsets = set()
    for img in pixels(x):
        found = [(i, t, l) for i, full in big.items() for cand in (full, full[:, ::-1]) for t in range(5)
                 for l in range(5) if np.array_equal(cand[t:t + 10, l:l + 10], img)]
        assert found, "output is not a window of the resized record (or its mirror)"
        offsets.add(found[0][1:])
    assert len(offsets) > 1  # crops really move


def test_corrupt_records_are_skipped_counted_and_named(tmp_path):
    encoded = png_bytes(unique_images(len(LABELS), 12))
    encoded[4] = b"\x89PNG\r\n\x1a\n but the rest is garbage"
    recordio.write_insightface_rec(tmp_path, LABELS, encoded, image_size=(12, 12))
    rec = tmp_path / "train.rec"
    blob = bytearray(rec.read_bytes())
    bad_offset = record_offset(tmp_path, 8)
    blob[bad_offset + 1] ^= 0x55  # key 8: bad magic
    rec.write_bytes(bytes(blob))
    ds, info = pipeline.build_dataset(tmp_path, batch_size=3, training=False)
    # The bad magic is found when the headers are scanned, the undecodable PNG by the decode probe
    # (a sample of up to 32 images, here all of them); iterating (twice) counts neither again.
    assert info.corrupt.count == 2
    assert info.num_images == 9
    x, y = collect(ds)
    assert len(y) == 8 and collect(ds)[1].tolist() == y.tolist()
    assert info.corrupt.count == 2
    expected_labels = [lab for k, lab in enumerate(LABELS, 1) if k not in (5, 8)]
    assert y.tolist() == expected_labels
    assert f"{rec}: record key 8 at byte offset {bad_offset}: bad magic" in info.corrupt.messages[0]
    assert f"{rec} key 5 (byte offset" in info.corrupt.messages[1] and "cannot decode image" in info.corrupt.messages[1]
    assert info.corrupt.summary().startswith("2 corrupt record(s) skipped; first:")


def test_truncated_rec_file(rec_dir):
    path, _ = rec_dir
    rec = path / "train.rec"
    cut = record_offset(path, 10) + 30
    rec.write_bytes(rec.read_bytes()[:cut])
    ds, info = pipeline.build_dataset(path, batch_size=4, training=False)
    _, y = collect(ds)
    assert y.tolist() == LABELS[:9]
    assert info.corrupt.count == 1 and "runs past the end of the file" in info.corrupt.messages[0]
    # The lost record was class 3's only image: property still says 4 classes, and the gap is
    # explained by the skipped record, so this is a warning, not an error.
    assert info.num_classes == 4


def test_corrupt_tfrecord_in_the_pipeline(rec_dir, tmp_path):
    path, images = rec_dir
    out = tmp_path / "d.tfrecord"
    convert.convert_to_tfrecord(path, out)
    blob = bytearray(out.read_bytes())
    target = png_bytes(images[2:3])[0]
    blob[blob.find(target) + 50] ^= 0x08
    out.write_bytes(bytes(blob))
    ds, info = pipeline.build_dataset(out, batch_size=4, training=False)
    x, y = collect(ds)
    assert info.kind == "tfrecord" and y.tolist() == LABELS[:2] + LABELS[3:]
    np.testing.assert_array_equal(pixels(x), np.delete(images, 2, axis=0))
    assert info.corrupt.count == 1 and "record 2 at byte offset" in info.corrupt.messages[0]


def test_folder_source_in_the_pipeline(tmp_path):
    images = unique_images(6, 12)
    folder.write_folder_tree(tmp_path, [0, 0, 1, 1, 2, 2], png_bytes(images), extension=".png")
    ds, info = pipeline.build_dataset(tmp_path, batch_size=6, training=False)
    x, y = collect(ds)
    assert info.kind == "folder" and info.image_size == 12 and info.num_classes == 3
    np.testing.assert_array_equal(pixels(x), images)
    assert y.tolist() == [0, 0, 1, 1, 2, 2]


def test_errors_before_training(tmp_path):
    # Labels outside property's num_classes.
    write_rec(tmp_path / "a", [0, 1, 5], unique_images(3, 8), num_classes=6)
    (tmp_path / "a" / "property").write_text("3,8,8\n")
    with pytest.raises(ValueError, match=r"1 image\(s\) have labels outside 0\..2 \(property num_classes=3\); "
                                         r"first: .*train\.rec key 3 .* has label 5"):
        pipeline.build_dataset(tmp_path / "a", batch_size=2, training=True)
    # Classes without images.
    write_rec(tmp_path / "b", [0, 0, 2, 4], unique_images(4, 8))
    with pytest.raises(ValueError, match=r"labels are not contiguous: 2 of 5 classes have no images \(first missing "
                                         r"class ids: \[1, 3\]\)"):
        pipeline.open_source(tmp_path / "b")
    # Every record corrupt -> no usable images.
    write_rec(tmp_path / "c", [0, 0], unique_images(2, 8))
    rec = tmp_path / "c" / "train.rec"
    blob = bytearray(rec.read_bytes())
    for key in (1, 2):
        blob[record_offset(tmp_path / "c", key)] ^= 0xFF
    rec.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match=r"the dataset has no usable images \(2 corrupt record\(s\) skipped; first: "):
        pipeline.open_source(tmp_path / "c")
    # Not a dataset / missing.
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a dataset: expected a directory with train.rec"):
        pipeline.open_source(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="dataset not found"):
        pipeline.open_source(tmp_path / "nope")
    # Bad subsets.
    write_rec(tmp_path / "d", [0, 1], unique_images(2, 8))
    with pytest.raises(ValueError, match=r"index subset has positions outside 0\.\.1"):
        pipeline.build_dataset(tmp_path / "d", batch_size=2, training=False, indices=[0, 2])
    with pytest.raises(ValueError, match="index subset is empty"):
        pipeline.build_dataset(tmp_path / "d", batch_size=2, training=False, indices=[])


def test_stratified_split_is_even_disjoint_and_seeded():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(30), rng.integers(1, 12, 30))
    rng.shuffle(labels)
    first, second = pipeline.stratified_split(labels, seed=2)
    assert np.intersect1d(first, second).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([first, second])), np.arange(labels.size))
    a = np.bincount(labels[first], minlength=30)
    b = np.bincount(labels[second], minlength=30)
    assert np.all(np.abs(a - b) <= 1)
    assert np.all(a + b == np.bincount(labels, minlength=30))
    odd = np.bincount(labels, minlength=30) % 2 == 1
    assert odd.sum() >= 4 and 0 < (a > b)[odd].sum() < odd.sum()  # extras go to both halves
    again = pipeline.stratified_split(labels, seed=2)
    np.testing.assert_array_equal(first, again[0])
    np.testing.assert_array_equal(second, again[1])
    other = pipeline.stratified_split(labels, seed=3)
    assert not np.array_equal(first, other[0])
    with pytest.raises(ValueError, match="empty label list"):
        pipeline.stratified_split([])


def test_pipeline_on_a_split_half(rec_dir):
    path, images = rec_dir
    source, first, second = pipeline.search_split(path, seed=2)
    assert sorted(first.tolist() + second.tolist()) == list(range(len(LABELS)))
    ds, info = pipeline.build_dataset(source, batch_size=32, training=False, indices=second)
    x, y = collect(ds)
    assert info.num_images == second.size
    assert y.tolist() == [LABELS[i] for i in second]
    np.testing.assert_array_equal(pixels(x), images[second])
