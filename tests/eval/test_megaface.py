"""MegaFace devkit feature files: exact bytes, export from a real image tree, noise refinement."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.eval.embedders import load_embedder
from pocketnet_tf.eval.megaface import (
    export_features,
    feature_path,
    read_feature_file,
    read_image_list,
    refine_features,
    write_feature_file,
)
from tests.factory import grid_mean_embedding, mean_colour_model, pixels


def test_feature_file_bytes_and_round_trip(tmp_path):
    feat = np.array([0.5, -0.25, 1e-3, 3.0], dtype=np.float32)
    path = tmp_path / "a" / "x.png_algo.bin"
    write_feature_file(path, feat)
    data = path.read_bytes()
    assert data[:16] == struct.pack("<4i", 4, 1, 4, 5)
    assert data[16:] == struct.pack("<4f", 0.5, -0.25, 1e-3, 3.0)
    np.testing.assert_array_equal(read_feature_file(path), feat)
    assert [p.name for p in path.parent.iterdir()] == ["x.png_algo.bin"]  # no temporaries left


@pytest.mark.parametrize(
    "data, message",
    [
        (struct.pack("<4i", 4, 1, 4, 6) + bytes(16), r"expected \(n, 1, 4, 5\)"),
        (struct.pack("<4i", 4, 1, 4, 5) + bytes(12), "28 bytes for 4 floats"),
        (b"\x01\x02", "shorter than the 16-byte header"),
    ],
)
def test_bad_feature_files(tmp_path, data, message):
    path = tmp_path / "bad.bin"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=message) as info:
        read_feature_file(path)
    assert str(path) in str(info.value)


def test_feature_path_layout(tmp_path):
    assert feature_path(tmp_path, "Aaron_Eckhart/Aaron_Eckhart_1.png", "pn") == (
        tmp_path / "Aaron_Eckhart" / "Aaron_Eckhart_1.png_pn.bin")
    assert feature_path(tmp_path, "0/01/123.jpg", "pn") == tmp_path / "0" / "01" / "123.jpg_pn.bin"


def test_image_lists(tmp_path):
    text = tmp_path / "list.txt"
    text.write_text("# comment\nA/a1.png\n\nB/b1.png\n")
    assert read_image_list(text) == ["A/a1.png", "B/b1.png"]
    js = tmp_path / "facescrub_features_list.json"
    js.write_text(json.dumps({"id": ["A", "B"], "path": ["A/a1.png", "B/b1.png"]}))
    assert read_image_list(js) == ["A/a1.png", "B/b1.png"]
    text.write_text("../../etc/passwd\n")
    with pytest.raises(ValueError, match="must be a relative path inside the image root"):
        read_image_list(text)


def test_export_features_from_image_tree(tmp_path):
    images = pixels(5, seed=4, size=112)
    rels = ["Id_A/Id_A_1.png", "Id_A/Id_A_2.png", "Id_B/Id_B_1.png", "x/y/100.jpg", "x/y/101.png"]
    for rel, img in zip(rels, images):
        (tmp_path / "img" / rel).parent.mkdir(parents=True, exist_ok=True)
        data = preprocess.encode_jpeg(img) if rel.endswith(".jpg") else preprocess.encode_png(img)
        (tmp_path / "img" / rel).write_bytes(data)
    (tmp_path / "list.txt").write_text("\n".join(rels) + "\n")
    embedder = load_embedder(mean_colour_model(grid=2), batch_size=2)
    n = export_features(embedder, tmp_path / "img", tmp_path / "list.txt", tmp_path / "out", algo="tiny",
                        batch_size=2)
    assert n == 5
    for rel, img in zip(rels, images):
        got = read_feature_file(feature_path(tmp_path / "out", rel, "tiny"))
        if rel.endswith(".jpg"):
            img = preprocess.decode_image((tmp_path / "img" / rel).read_bytes())  # what was stored
        ref = grid_mean_embedding(img, 2) + grid_mean_embedding(img[:, ::-1], 2)
        np.testing.assert_allclose(got, ref / np.linalg.norm(ref), atol=1e-6)
    # Resume: nothing left to do.
    assert export_features(embedder, tmp_path / "img", rels, tmp_path / "out", algo="tiny", skip_existing=True) == 0
    (tmp_path / "img" / rels[2]).unlink()
    with pytest.raises(FileNotFoundError, match="Id_B_1.png: listed image not found"):
        export_features(embedder, tmp_path / "img", rels, tmp_path / "out2", algo="tiny")


def test_refinement(tmp_path):
    fs = {"A/A_1.png": [1.0, 0, 0], "A/A_2.png": [0.6, 0.8, 0], "A/A_3.png": [0, 0, 1.0],
          "B/B_1.png": [0, 1.0, 0], "C/C_1.png": [0, 0.6, 0.8]}
    mf = {"0/00/1.jpg": [1.0, 0, 0], "0/00/2.jpg": [0, 1.0, 0]}
    for rel, v in fs.items():
        write_feature_file(feature_path(tmp_path / "fs", rel, "pn"), v)
    for rel, v in mf.items():
        write_feature_file(feature_path(tmp_path / "mf", rel, "pn"), v)
    (tmp_path / "fs_noise.txt").write_text("# noisy FaceScrub images\nA_3.png\nC/C_1.png\n")
    (tmp_path / "mf_noise.txt").write_text("0/00/2.jpg\n")
    stats = refine_features(
        facescrub_images=list(fs), megaface_images=list(mf),
        facescrub_features=tmp_path / "fs", megaface_features=tmp_path / "mf",
        facescrub_noises=tmp_path / "fs_noise.txt", megaface_noises=tmp_path / "mf_noise.txt",
        algo="pn", facescrub_out=tmp_path / "fs_r", megaface_out=tmp_path / "mf_r", seed=1)
    assert stats == {"facescrub_images": 5, "facescrub_noisy": 2,
                     "facescrub_noisy_without_clean_identity_images": 1,
                     "megaface_images": 2, "megaface_noisy": 1}

    def refined(root, rel):
        return read_feature_file(feature_path(tmp_path / root, rel, "pn"))

    # Clean images: unchanged plus a 0.
    np.testing.assert_array_equal(refined("fs_r", "A/A_1.png"), [1, 0, 0, 0])
    np.testing.assert_array_equal(refined("fs_r", "B/B_1.png"), [0, 1, 0, 0])
    # A_3 (listed by file name): normalised sum of A's clean features [1.6, 0.8, 0] + tiny noise.
    a3 = refined("fs_r", "A/A_3.png")
    expected = np.array([1.6, 0.8, 0]) / np.linalg.norm([1.6, 0.8, 0])
    np.testing.assert_allclose(a3[:3], expected, atol=1e-3)
    assert not np.array_equal(a3[:3], expected.astype(np.float32))  # noise applied
    assert a3[3] == 0 and abs(np.linalg.norm(a3[:3]) - 1) < 1e-6
    # C has no clean image: keeps its own feature.
    np.testing.assert_allclose(refined("fs_r", "C/C_1.png"), [0, 0.6, 0.8, 0], atol=1e-7)
    # Distractors: clean gets 0, noisy gets 100.
    np.testing.assert_array_equal(refined("mf_r", "0/00/1.jpg"), [1, 0, 0, 0])
    np.testing.assert_array_equal(refined("mf_r", "0/00/2.jpg"), [0, 1, 0, 100])
    # Deterministic given the seed.
    again = tmp_path / "again"
    refine_features(
        facescrub_images=list(fs), megaface_images=list(mf),
        facescrub_features=tmp_path / "fs", megaface_features=tmp_path / "mf",
        facescrub_noises=tmp_path / "fs_noise.txt", megaface_noises=tmp_path / "mf_noise.txt",
        algo="pn", facescrub_out=again, megaface_out=tmp_path / "mf_r2", seed=1)
    np.testing.assert_array_equal(read_feature_file(feature_path(again, "A/A_3.png", "pn")), a3)
