"""Folder-per-identity trees: labels from sorted folder names, round trip, failure modes."""

import pytest

from pocketnet_tf.data import convert, folder, preprocess, tfrecord
from tests.data.data_helpers import png_bytes, unique_images


def test_round_trip_and_label_order(tmp_path):
    images = unique_images(5, 8)
    encoded = png_bytes(images)
    names = ["zoe", "Adam", "bob"]  # byte-wise sorted: Adam, bob, zoe
    folder.write_folder_tree(tmp_path, [0, 0, 1, 2, 2], encoded, names=names, extension=".png")
    (tmp_path / "bob" / "notes.txt").write_text("not an image")
    (tmp_path / "README").write_text("stray file at the root")
    (tmp_path / ".cache").mkdir()
    source = folder.FolderSource(tmp_path)
    assert source.identities == ["Adam", "bob", "zoe"]
    assert [source.source_id(i) for i in range(5)] == [
        "Adam/000000.png", "bob/000000.png", "bob/000001.png", "zoe/000000.png", "zoe/000001.png"]
    assert source.labels.tolist() == [0, 1, 1, 2, 2]
    by_id = {"zoe": encoded[0:2], "Adam": encoded[2:3], "bob": encoded[3:5]}
    assert [source.read_image(i) for i in range(5)] == by_id["Adam"] + by_id["bob"] + by_id["zoe"]
    assert source.ignored_files == 2 and source.num_classes_declared == 3
    assert folder.looks_like_folder_tree(tmp_path)


def test_empty_identity_folder_is_an_error(tmp_path):
    folder.write_folder_tree(tmp_path, [0], png_bytes(unique_images(1, 8)))
    (tmp_path / "id_00001").mkdir()
    with pytest.raises(ValueError, match=r"id_00001: identity folder has no \.jpg/\.jpeg/\.png images"):
        folder.FolderSource(tmp_path)


def test_no_identity_folders(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    assert not folder.looks_like_folder_tree(tmp_path)
    with pytest.raises(ValueError, match="no identity folders found"):
        folder.FolderSource(tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder tree not found"):
        folder.FolderSource(tmp_path / "missing")


def test_convert_folder_to_tfrecord(tmp_path):
    images = unique_images(4, 8)
    jpegs = [preprocess.encode_jpeg(im) for im in images]
    folder.write_folder_tree(tmp_path / "tree", [0, 1, 1, 2], jpegs)
    summary = convert.convert_to_tfrecord(tmp_path / "tree", tmp_path / "f.tfrecord")
    assert summary["num_written"] == 4 and summary["num_classes"] == 3 and summary["kind"] == "folder"
    source = tfrecord.TFRecordSource(tmp_path / "f.tfrecord")
    assert source.labels.tolist() == [0, 1, 1, 2]
    assert [source.read_image(i) for i in range(4)] == jpegs
