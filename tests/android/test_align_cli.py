"""``python -m pocketnet_tf.align``: align / enrol / match end to end, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pocketnet_tf.face import detect
from pocketnet_tf.face.gallery import Gallery
from tests.android.test_cross_language import _hopper

pytestmark = pytest.mark.slow


def _cli(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "pocketnet_tf.align", *args], capture_output=True, text=True,
                          timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    hopper = _hopper()
    Image.fromarray(hopper).save(d / "hopper.jpg", quality=95)
    # The same person, shifted and mirrored: a second photo of the same identity.
    Image.fromarray(np.ascontiguousarray(hopper[20:, ::-1])).save(d / "hopper_mirror.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)).save(d / "noise.png")
    return d


def test_align_writes_crops_and_report(photos, tmp_path):
    proc = _cli(f"--in={photos}", f"--out={tmp_path / 'out'}")
    assert "2 faces from 3 photos" in proc.stdout and "noise.png: no face" in proc.stdout
    report = json.loads((tmp_path / "out" / "faces.json").read_text())
    by_name = {p["photo"].rsplit("/", 1)[1]: p["faces"] for p in report["photos"]}
    assert len(by_name["hopper.jpg"]) == 1 and by_name["noise.png"] == []
    face = by_name["hopper.jpg"][0]
    crop = np.asarray(Image.open(tmp_path / "out" / face["crop"]))
    # The crop is exactly what the library computes from the reported keypoints.
    image = np.asarray(Image.open(photos / "hopper.jpg").convert("RGB"))
    expected, matrix = detect.align_from_keypoints(image, np.asarray(face["keypoints"]))
    np.testing.assert_array_equal(crop, expected)
    np.testing.assert_array_equal(np.asarray(face["matrix"]), matrix)


def test_enrol_then_match(photos, real_bundles, tmp_path):
    bundle = real_bundles[("fp32", False)]
    gallery = tmp_path / "gallery.json"
    proc = _cli("enrol", f"--bundle={bundle}", f"--gallery={gallery}", "--name=Grace", f"--in={photos / 'hopper.jpg'}")
    assert "enrolled 'Grace': 1 embeddings" in proc.stdout
    g = Gallery.load(gallery)
    assert g.names == ["Grace"]
    proc = _cli("match", f"--bundle={bundle}", f"--gallery={gallery}",
                f"--in={photos / 'hopper.jpg'},{photos / 'noise.png'}")
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    same, noise = results
    # The enrolled photo matches itself with cosine 1 (same crop, same tensor, same embedding).
    assert same["match"]["name"] == "Grace" and same["match"]["accepted"]
    assert same["match"]["score"] == pytest.approx(1.0, abs=1e-6)
    assert noise["match"] is None and "noise.png: no face" in proc.stdout
    # Enrolling a photo without a face changes nothing.
    before = gallery.read_bytes()
    proc = _cli("enrol", f"--bundle={bundle}", f"--gallery={gallery}", "--name=X",
                f"--in={photos / 'hopper_mirror.png'},{photos / 'noise.png'}", check=False)
    assert proc.returncode == 1 and "noise.png: no face found (nothing enrolled)" in proc.stderr
    assert gallery.read_bytes() == before


def test_bad_inputs_give_one_line_errors(tmp_path):
    proc = _cli(f"--in={tmp_path / 'missing.jpg'}", f"--out={tmp_path}", check=False)
    assert proc.returncode == 1 and proc.stderr.strip().endswith("missing.jpg: no such file or directory")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    proc = _cli(f"--in={tmp_path / 'broken.jpg'}", f"--out={tmp_path / 'o'}", check=False)
    assert proc.returncode == 1 and "broken.jpg: cannot decode image" in proc.stderr
    proc = _cli("match", f"--in={tmp_path / 'broken.jpg'}", check=False)
    assert proc.returncode != 0 and "match needs --bundle and --gallery" in proc.stderr
