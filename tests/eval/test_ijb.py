"""IJB 1:1 protocol: hand-computed pooling, and a miniature release in the real file layout."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pocketnet_tf.eval.embedders import load_embedder
from pocketnet_tf.eval.ijb import (
    IJBMeta,
    canonical_set_name,
    evaluate_ijb,
    image_features,
    pair_scores,
    read_ijb_meta,
    score_ijb,
    template_features,
)
from tests.eval.synthetic_sets import write_mini_ijb_release
from tests.factory import grid_mean_embedding, mean_colour_model

GRID = 4


def test_set_names():
    assert canonical_set_name("ijb-c") == "IJBC" and canonical_set_name("IJB_B") == "IJBB"
    with pytest.raises(ValueError, match="unknown IJB set 'IJBA'"):
        canonical_set_name("IJBA")


def _hand_case():
    # T1: images 0, 1 (media 10) and 2 (media 11); T2: image 3 (media 12).
    e_orig = np.array([[1.0, 0], [3, 0], [0, 1], [2, 0]])
    e_flip = np.array([[1.0, 0], [1, 0], [0, 1], [0, 0]])
    faceness = np.array([1.0, 0.5, 2.0, 1.0])
    templates = np.array([1, 1, 1, 2])
    medias = np.array([10, 10, 11, 12])
    return e_orig, e_flip, faceness, templates, medias


@pytest.mark.parametrize(
    "flip, normalize, detector, expected",
    [
        # flip-add: [2,0] [4,0] [0,2] [2,0]; x score: [2,0] [2,0] [0,4]; media 10 mean [2,0];
        # T1 = [2,0] + [0,4] = [2,4] -> score with T2 [1,0]: 2 / sqrt(20).
        (True, False, True, 2 / math.sqrt(20)),
        # no score: media 10 mean [3,0] + [0,2] = [3,2] -> 3 / sqrt(13).
        (True, False, False, 3 / math.sqrt(13)),
        # normalise then score: [1,0]*1, [1,0]*0.5 -> mean [0.75,0]; [0,1]*2 -> T1 [0.75,2].
        (True, True, True, 0.75 / math.sqrt(0.75**2 + 4)),
        # no flip: [1,0], [3,0]*0.5 -> mean [1.25,0]; [0,1]*2 -> T1 [1.25,2].
        (False, False, True, 1.25 / math.sqrt(1.25**2 + 4)),
    ],
)
def test_pooling_hand_computed(flip, normalize, detector, expected):
    e_orig, e_flip, faceness, templates, medias = _hand_case()
    feats = image_features(e_orig, e_flip, faceness, flip=flip, normalize=normalize, detector_score=detector)
    ids, tfeats = template_features(feats, templates, medias)
    assert ids.tolist() == [1, 2]
    np.testing.assert_allclose(np.linalg.norm(tfeats, axis=1), 1.0)
    score = pair_scores(ids, tfeats, np.array([[1, 2], [2, 1], [1, 1]]))
    np.testing.assert_allclose(score, [expected, expected, 1.0], rtol=1e-12)


def test_pair_with_unknown_template_is_an_error():
    ids = np.array([1, 2])
    with pytest.raises(ValueError, match="without features"):
        pair_scores(ids, np.eye(2), np.array([[1, 3]]))


# ---------------------------------------------------------------------------------------------
# Miniature IJB-C release (tests/eval/synthetic_sets.py).


def _reference_scores(meta: IJBMeta, originals):
    """Independent loops: embeddings of the *unplaced* faces, then the pooling rules by hand."""
    feats = []
    for img, s in zip(originals, meta.faceness):
        feats.append((grid_mean_embedding(img, GRID) + grid_mean_embedding(img[:, ::-1], GRID)) * float(s))
    templates = {}
    for f, t, m in zip(feats, meta.templates.tolist(), meta.medias.tolist()):
        templates.setdefault(t, {}).setdefault(m, []).append(f)
    pooled = {}
    for t, media in templates.items():
        v = sum(np.mean(fs, axis=0) for fs in media.values())
        pooled[t] = v / np.linalg.norm(v)
    return np.array([float(pooled[a] @ pooled[b]) for a, b in meta.pairs.tolist()])


@pytest.mark.parametrize("shuffle", [False, True])
def test_miniature_release_end_to_end(tmp_path, shuffle):
    originals = write_mini_ijb_release(tmp_path, shuffle_landmarks=shuffle)
    meta = read_ijb_meta(tmp_path, "IJBC")
    assert len(meta.image_names) == 24 and meta.pairs.shape == (28, 2)
    assert int(meta.labels.sum()) == 4
    # Landmarks and scores line up with the image order even when the file was shuffled.
    assert meta.image_names[:3] == ["1.jpg", "2.jpg", "3.jpg"]

    embedder = load_embedder(mean_colour_model(grid=GRID), batch_size=5)
    result = evaluate_ijb(embedder, tmp_path, "ijbc", batch_size=7, workers=2)

    reference = _reference_scores(meta, originals)
    # Alignment recovers the placed faces up to resampling and JPEG (max seen 1.0e-3).
    np.testing.assert_allclose(result.scores, reference, atol=2e-3)
    genuine = result.scores[meta.labels == 1]
    impostor = result.scores[meta.labels == 0]
    assert genuine.min() > impostor.max()
    # Perfect separation: TAR 1 at every FAR (the closest point is FPR 0 at the top of the ROC).
    assert result.tar_at_far == {far: 1.0 for far in (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)}
    assert result.auc == 1.0
    summary = result.to_json()
    assert (summary["images"], summary["templates"], summary["pairs"]) == (24, 8, 28)
    assert (summary["positive_pairs"], summary["negative_pairs"]) == (4, 24)


def test_wrong_landmarks_destroy_the_match(tmp_path):
    """Teeth for the end-to-end test: garbage landmarks give different, worse scores."""
    originals = write_mini_ijb_release(tmp_path)
    path = tmp_path / "meta" / "ijbc_name_5pts_score.txt"
    rows = [line.split() for line in path.read_text().splitlines()]
    for r in rows:  # swap the eyes and shift everything by 20 px
        pts = np.array(r[1:11], float).reshape(5, 2)[[1, 0, 2, 4, 3]] + 20
        r[1:11] = [f"{v:.4f}" for v in pts.reshape(-1)]
    path.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    meta = read_ijb_meta(tmp_path)
    result = evaluate_ijb(load_embedder(mean_colour_model(grid=GRID)), tmp_path)
    assert np.abs(result.scores - _reference_scores(meta, originals)).max() > 0.05


def test_meta_errors(tmp_path):
    write_mini_ijb_release(tmp_path)
    meta_dir = tmp_path / "meta"
    with pytest.raises(FileNotFoundError, match="ijbb_face_tid_mid.txt"):
        read_ijb_meta(tmp_path, "IJBB")
    lmk = meta_dir / "ijbc_name_5pts_score.txt"
    good = lmk.read_text()
    lmk.write_text(good.replace(" ", " 1 ", 1))
    with pytest.raises(ValueError, match=r"ijbc_name_5pts_score.txt:1: expected 12 fields, got 13"):
        read_ijb_meta(tmp_path)
    lmk.write_text("\n".join(good.splitlines()[1:]) + "\n")
    with pytest.raises(ValueError, match=r"no landmarks for 1 images .* '1.jpg'"):
        read_ijb_meta(tmp_path)
    lmk.write_text(good)
    pairs = meta_dir / "ijbc_template_pair_label.txt"
    pairs.write_text(pairs.read_text() + "1000 424242 0\n")
    with pytest.raises(ValueError, match="templates have no images .* 424242"):
        read_ijb_meta(tmp_path)
    pairs.write_text("1000 1001 1\n")
    (tmp_path / "loose_crop" / "2.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"loose_crop/2.jpg"):
        evaluate_ijb(load_embedder(mean_colour_model()), tmp_path)
    (tmp_path / "loose_crop" / "2.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    with pytest.raises(ValueError, match=r"loose_crop/2.jpg: cannot decode"):
        evaluate_ijb(load_embedder(mean_colour_model()), tmp_path)


def test_score_ijb_from_given_embeddings_matches_hand_case():
    e_orig, e_flip, faceness, templates, medias = _hand_case()
    meta = IJBMeta(["a", "b", "c", "d"], templates, medias, np.zeros((4, 5, 2), np.float32),
                   faceness.astype(np.float32), np.array([[1, 2], [1, 1]]), np.array([0, 1]))
    result = score_ijb(meta, e_orig, e_flip)
    np.testing.assert_allclose(result.scores, [2 / math.sqrt(20), 1.0])
    assert result.tar_at_far[1e-1] == 1.0 and result.negative_pairs == 1
