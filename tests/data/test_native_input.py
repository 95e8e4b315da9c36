"""The native input path: shard sets, identical data in every format, per-record corrupt counts,
the decode probe, auto-sharding by file, and no hang at interpreter exit."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.data import convert, folder, pipeline, preprocess, recordio, shards, tfrecord
from tests.cli_support import ENV, REPO, run_module
from tests.data.data_helpers import collect, pixels, unique_images

LABELS = np.repeat(np.arange(6), [5, 3, 4, 6, 2, 4])  # 24 images, grouped by identity as in insightface sets


def _jpegs(n, size=16, seed=0):
    return [preprocess.encode_jpeg(im, quality=90) for im in unique_images(n, size, seed=seed)]


def _source_ids(shard_dir):
    """``image/source_id`` of every position of a shard set, in set order."""
    source = shards.ShardSetSource(shard_dir)
    ids = []
    for i in range(len(source)):
        path, _, offset = source._where(i)
        with open(path, "rb") as f:
            data = tfrecord.read_record_at(f.fileno(), offset)
        example = tf.train.Example.FromString(data)
        ids.append(example.features.feature["image/source_id"].bytes_list.value[0].decode())
    return ids


@pytest.fixture
def three_formats(tmp_path):
    encoded = _jpegs(LABELS.size)
    recordio.write_insightface_rec(tmp_path / "rec", LABELS, encoded, image_size=(16, 16))
    folder.write_folder_tree(tmp_path / "tree", LABELS, encoded)
    convert.convert_to_shards(tmp_path / "rec", tmp_path / "shards", num_shards=3, seed=7,
                              progress_stream=io.StringIO())
    return tmp_path, encoded


def test_recordio_shards_and_folders_give_identical_images_and_labels(three_formats):
    root, encoded = three_formats
    x_rec, y_rec = collect(pipeline.build_dataset(root / "rec", batch_size=5, training=False)[0])
    x_tree, y_tree = collect(pipeline.build_dataset(root / "tree", batch_size=5, training=False)[0])
    ds, info = pipeline.build_dataset(root / "shards", batch_size=5, training=False)
    x_sh, y_sh = collect(ds)
    assert (info.kind, info.num_classes, info.num_images, info.image_size) == ("shards", 6, 24, 16)
    # The TensorFlow decoder gives PIL's pixels (accurate integer IDCT).
    np.testing.assert_array_equal(pixels(x_rec), [preprocess.decode_image(b, size=16) for b in encoded])
    assert y_rec.tolist() == LABELS.tolist()
    np.testing.assert_array_equal(x_tree, x_rec)
    assert y_tree.tolist() == y_rec.tolist()
    # Shards hold the records in a seeded permutation; each Example names its record (key = position + 1).
    order = [int(s.split(":")[1]) - 1 for s in _source_ids(root / "shards")]
    assert sorted(order) == list(range(24)) and order != sorted(order)
    np.testing.assert_array_equal(x_sh, x_rec[order])
    assert y_sh.tolist() == y_rec[order].tolist()


def test_shard_training_order_is_seeded_and_flips_half(three_formats):
    root, _ = three_formats
    source = pipeline.open_source(root / "shards")
    first = collect(pipeline.build_dataset(source, batch_size=4, training=True, seed=11)[0])
    again = collect(pipeline.build_dataset(source, batch_size=4, training=True, seed=11)[0])
    other = collect(pipeline.build_dataset(source, batch_size=4, training=True, seed=12)[0])
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1].tolist() == again[1].tolist()
    assert not np.array_equal(first[0], other[0])
    assert first[0].shape == (24, 16, 16, 3) and sorted(first[1].tolist()) == sorted(LABELS.tolist())
    plain = collect(pipeline.build_dataset(source, batch_size=24, training=False)[0])[0]
    flipped = sum(not any(np.array_equal(img, p) for p in plain) for img in first[0])
    mirrored = sum(any(np.array_equal(img, p[:, ::-1]) for p in plain) for img in first[0])
    assert flipped == mirrored and 3 <= flipped <= 21  # p = 0.5 over 24 images


def test_shard_subset_for_the_search_split(three_formats):
    root, _ = three_formats
    source, first, second = pipeline.search_split(root / "shards", seed=2)
    for half in (first, second):
        ds, info = pipeline.build_dataset(source, batch_size=64, training=False, indices=half)
        _, y = collect(ds)
        assert info.num_images == half.size
        assert sorted(y.tolist()) == sorted(source.labels[half].tolist())


def _rewrite_shard_with_bad_image(shard_dir, k, record):
    """Replaces one Example's image bytes by garbage (framing and checksums stay valid)."""
    manifest = json.loads((shard_dir / shards.MANIFEST).read_text())
    path = shard_dir / manifest["shards"][k]["path"]
    records = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    example = tf.train.Example.FromString(records[record])
    example.features.feature["image/encoded"].bytes_list.value[0] = b"\xff\xd8\xff\xe0 garbage, not a JPEG"
    records[record] = example.SerializeToString()
    path.unlink()
    with tfrecord.TFRecordWriter(path) as writer:
        for data in records:
            writer.write(data)
    manifest["shards"][k]["bytes"] = path.stat().st_size
    (shard_dir / shards.MANIFEST).write_text(json.dumps(manifest))


def test_corrupt_image_in_a_shard_is_skipped_and_counted_once(three_formats):
    root, _ = three_formats
    _rewrite_shard_with_bad_image(root / "shards", k=1, record=7)  # the last record of shard 1: position 22
    source = pipeline.open_source(root / "shards")
    source.decoding_probed = True  # this test is about the decoder in the pipeline, not the probe
    ds, info = pipeline.build_dataset(source, batch_size=5, training=True, seed=0, drop_remainder=False)
    for epoch in range(3):
        _, y = collect(ds)
        assert y.size == 23, epoch
        assert info.corrupt.count == 1
    assert info.corrupt.messages == [f"{root / 'shards' / shards.shard_name(1, 3)} record 7 (byte offset "
                                     f"{source.backend.offsets[22]}): cannot decode image (rejected by the "
                                     "TensorFlow decoder)"]


def test_corrupt_jpeg_in_recordio_is_skipped_and_counted_once(tmp_path):
    encoded = _jpegs(40, seed=3)
    labels = np.repeat(np.arange(4), 10)
    for bad in (17, 39):  # 39: the last record of the pass (only the closing sentinel reveals it)
        encoded[bad] = encoded[bad][:30] + b"\x00" * 40
    recordio.write_insightface_rec(tmp_path, labels, encoded, image_size=(16, 16))
    source = pipeline.open_source(tmp_path)
    source.decoding_probed = True
    ds, info = pipeline.build_dataset(source, batch_size=8, training=False)
    for _ in range(2):
        x, y = collect(ds)
        assert y.tolist() == np.delete(labels, [17, 39]).tolist()
    assert info.corrupt.count == 2
    assert [m.split(" (byte offset")[0] for m in info.corrupt.messages] == [
        f"{tmp_path / 'train.rec'} key 18", f"{tmp_path / 'train.rec'} key 40"]
    # Shuffled epochs find the same two records, still counted once each.
    train, _ = pipeline.build_dataset(source, batch_size=8, training=True, seed=1, drop_remainder=False)
    assert collect(train)[1].size == 38 and info.corrupt.count == 2


def test_undecodable_data_fails_before_training(tmp_path):
    encoded = [b"\xff\xd8\xff\xe0" + bytes(range(60)) for _ in range(6)]
    recordio.write_insightface_rec(tmp_path, [0, 0, 0, 1, 1, 1], encoded, image_size=(16, 16))
    with pytest.raises(ValueError, match=rf"{tmp_path}: none of 6 sampled images can be decoded \(first: "
                                         rf".*train\.rec key 1 .*\); the data is unusable"):
        pipeline.build_dataset(tmp_path, batch_size=2, training=True)


def test_shards_are_split_between_workers_by_file(three_formats):
    from tensorflow.python.data.experimental.ops.distribute import _AutoShardDataset

    root, _ = three_formats
    source = pipeline.open_source(root / "shards")
    ds, _ = pipeline.build_dataset(source, batch_size=1, training=False)
    seen = []
    for worker in range(3):
        _, y = collect(_AutoShardDataset(ds, num_workers=3, index=worker))
        shard_labels = source.labels[worker::3]  # positions of shard k are k, k + 3, ...
        assert y.tolist() == shard_labels.tolist()
        seen += y.tolist()
    assert sorted(seen) == sorted(LABELS.tolist())


def test_shard_set_refuses_a_truncated_shard_and_a_bad_manifest(three_formats):
    root, _ = three_formats
    shard = root / "shards" / shards.shard_name(2, 3)
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(ValueError, match=rf"{shard}: \d+ bytes, the manifest says \d+ \(truncated or replaced shard\)"):
        pipeline.open_source(root / "shards")
    (root / "shards" / shards.MANIFEST).write_text('{"schema": "something else"}')
    with pytest.raises(ValueError, match="manifest.json: not a shard-set manifest"):
        pipeline.open_source(root / "shards")
    with pytest.raises(ValueError, match="must be a new or empty directory"):
        convert.convert_to_shards(root / "rec", root / "shards")


@pytest.mark.slow
def test_live_iterators_do_not_hang_at_exit(three_formats):
    """A live iterator over each format (RecordIO, shards, folder tree, one .tfrecord) when the
    script ends: the interpreter must exit (it used to hang in the iterator's destructor)."""
    root, _ = three_formats
    convert.convert_to_tfrecord(root / "rec", root / "one.tfrecord")
    paths = [str(root / name) for name in ("rec", "shards", "tree", "one.tfrecord")]
    snippet = ("from pocketnet_tf.data.pipeline import build_dataset\n"
               f"its = [iter(build_dataset(p, batch_size=4, training=True, seed=0)[0].repeat()) for p in {paths!r}]\n"
               "print(sum(int(next(it)[1].shape[0]) for it in its))\n")
    proc = subprocess.run([sys.executable, "-c", snippet], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0 and proc.stdout.strip() == "16", proc.stderr[-2000:]


@pytest.mark.slow
def test_convert_and_info_cli_on_shards(tmp_path):
    recordio.write_insightface_rec(tmp_path / "rec", LABELS, _jpegs(LABELS.size), image_size=(16, 16))
    proc = run_module("pocketnet_tf.data", ["convert", f"--src={tmp_path / 'rec'}", f"--out={tmp_path / 'sh'}",
                                            "--shards=2", "--seed=5"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert (summary["num_images"], summary["num_classes"], summary["shards"], summary["image_size"]) == (24, 6, 2,
                                                                                                          [16, 16])
    assert "24/24 images" in proc.stderr  # the progress bar
    manifest = json.loads((tmp_path / "sh" / "manifest.json").read_text())
    assert [s["num_images"] for s in manifest["shards"]] == [12, 12] and manifest["format_version"] == 1
    info = run_module("pocketnet_tf.data", ["info", f"--src={tmp_path / 'sh'}", "--decode"], timeout=300)
    assert info.returncode == 0, info.stderr[-2000:]
    assert json.loads(info.stdout) | {"location": None} == {
        "location": None, "kind": "shards", "num_classes": 6, "num_images": 24, "image_size": [16, 16],
        "format_version": 1, "images_per_shard": {shards.shard_name(0, 2): 12, shards.shard_name(1, 2): 12},
        "corrupt_records": 0, "corrupt_examples": []}
    again = run_module("pocketnet_tf.data", ["convert", f"--src={tmp_path / 'rec'}", f"--out={tmp_path / 'sh'}"],
                       timeout=300)
    assert again.returncode == 2 and "must be a new or empty directory" in again.stderr


@pytest.mark.slow
def test_benchmark_input_cli(three_formats):
    root, _ = three_formats
    proc = run_module("pocketnet_tf.benchmark", ["input", f"--data={root / 'shards'}", "--batch-size=4",
                                                 "--threads=2", "--steps=3", "--warmup=1", "--json"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert (result["kind"], result["threads"], result["images"], result["batch_size"]) == ("shards", 2, 12, 4)
    assert result["images_per_s"] > 0 and result["decode_only_images_per_s"] > 0
    assert result["ratio_to_decode_only"] == pytest.approx(result["images_per_s"] / result["decode_only_images_per_s"],
                                                           abs=0.01)
