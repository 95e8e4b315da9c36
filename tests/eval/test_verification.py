"""The .bin verification protocol: hand-computed cases, a loop reference, and a real .bin end to end."""

from __future__ import annotations

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.data.bin_file import write_bin
from pocketnet_tf.eval.embedders import load_embedder
from pocketnet_tf.eval.verification import (
    THRESHOLDS,
    best_threshold,
    evaluate_bin,
    evaluate_embeddings,
    flip_test_embeddings,
    kfold_accuracy,
    kfold_splits,
    load_verification_set,
    pair_distances,
    xnorm,
)
from tests.factory import mean_colour_model


def test_thresholds_grid():
    assert THRESHOLDS.size == 400 and THRESHOLDS[0] == 0.0 and THRESHOLDS[-1] == pytest.approx(3.99)


def test_kfold_splits_are_contiguous_like_unshuffled_kfold():
    splits = kfold_splits(23, 10)
    assert [len(test) for _, test in splits] == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]
    assert [int(test[0]) for _, test in splits] == [0, 3, 6, 9, 11, 13, 15, 17, 19, 21]
    for train, test in splits:
        assert sorted(np.r_[train, test].tolist()) == list(range(23))
    with pytest.raises(ValueError, match="cannot split 5 pairs into 10 folds"):
        kfold_splits(5, 10)


def test_hand_computed_two_folds():
    # A same 0.305 | B diff 0.505 || C same 0.705 | D diff 1.005
    # Fold 1 (test A, B) trains on C, D: perfect for 0.705 < T <= 1.005 -> first grid value 0.71;
    #   A (0.305 < 0.71 -> same) right, B (0.505 -> same) wrong: 0.5.
    # Fold 2 (test C, D) trains on A, B: perfect for 0.305 < T <= 0.505 -> 0.31;
    #   C (0.705 -> diff) wrong, D right: 0.5.
    d = [0.305, 0.505, 0.705, 1.005]
    same = [True, False, True, False]
    result = kfold_accuracy(d, same, n_folds=2)
    np.testing.assert_allclose(result.fold_thresholds, [0.71, 0.31])
    np.testing.assert_array_equal(result.fold_accuracies, [0.5, 0.5])
    assert result.mean == 0.5 and result.std == 0.0
    # Over all four pairs, 0.31 and 0.71 both give 3/4: the first one wins.
    threshold, acc = best_threshold(d, same)
    assert threshold == pytest.approx(0.31) and acc == 0.75


def test_hand_computed_unequal_folds():
    # Three folds of two. Pairs: (0.1 S, 0.2 D) (0.3 S, 2.0 D) (1.0 S, 1.5 D).
    # Test fold 0: train (0.3 S,2.0 D,1.0 S,1.5 D): perfect for 1.0 < T <= 1.5 -> 1.01;
    #   test: 0.1 same ok, 0.2 -> same, wrong: 0.5.
    # Test fold 1: train (0.1 S,0.2 D,1.0 S,1.5 D): best 3/4 at 0.11 (first); test 0.3 -> diff wrong,
    #   2.0 diff ok: 0.5.
    # Test fold 2: train (0.1 S,0.2 D,0.3 S,2.0 D): best 3/4 at 0.11; test 1.0 diff wrong, 1.5 ok: 0.5.
    d = [0.1, 0.2, 0.3, 2.0, 1.0, 1.5]
    same = [True, False, True, False, True, False]
    result = kfold_accuracy(d, same, n_folds=3)
    np.testing.assert_allclose(result.fold_thresholds, [1.01, 0.11, 0.11])
    np.testing.assert_array_equal(result.fold_accuracies, [0.5, 0.5, 0.5])
    # Make fold 2 easy (1.0 -> 0.05): fold 0 now trains to 0.31, fold 1 to 0.11 (both still 0.5 on
    # test); fold 2 keeps 0.11 and scores 0.05 (same) and 1.5 (diff) right: 1.0.
    d[4] = 0.05
    result = kfold_accuracy(d, same, n_folds=3)
    np.testing.assert_allclose(result.fold_thresholds, [0.31, 0.11, 0.11])
    np.testing.assert_array_equal(result.fold_accuracies[2], 1.0)
    assert result.mean == pytest.approx(2 / 3)
    assert result.std == pytest.approx(np.sqrt(((0.5 - 2 / 3) ** 2 * 2 + (1 - 2 / 3) ** 2) / 3))


def _loop_reference(d, same, n_folds):
    n = len(d)
    sizes = [n // n_folds + (1 if i < n % n_folds else 0) for i in range(n_folds)]
    accs, starts = [], np.cumsum([0] + sizes)
    for f in range(n_folds):
        test = list(range(starts[f], starts[f + 1]))
        train = [i for i in range(n) if i not in test]
        best_t, best_acc = None, -1.0
        for t in THRESHOLDS.tolist():
            acc = sum((d[i] < t) == same[i] for i in train) / len(train)
            if acc > best_acc:
                best_t, best_acc = t, acc
        accs.append(sum((d[i] < best_t) == same[i] for i in test) / len(test))
    return accs


def test_against_loop_reference_on_random_scores():
    rng = np.random.default_rng(0)
    same = rng.random(47) < 0.5
    d = np.where(same, rng.normal(0.9, 0.4, 47), rng.normal(1.6, 0.4, 47)).clip(0, 4)
    d[5] = d[6]  # a tie between pairs
    result = kfold_accuracy(d, same, n_folds=10)
    expected = _loop_reference(d.tolist(), same.tolist(), 10)
    np.testing.assert_allclose(result.fold_accuracies, expected, rtol=0, atol=1e-15)


def test_flip_xnorm_and_distances():
    e_orig = np.array([[3.0, 0.0], [0.0, 1.0]])
    e_flip = np.array([[1.0, 0.0], [0.0, 3.0]])
    # Sums [4, 0] and [0, 4] -> unit vectors [1, 0] and [0, 1]: distance 2.
    emb = flip_test_embeddings(e_orig, e_flip)
    np.testing.assert_allclose(emb, [[1, 0], [0, 1]])
    assert pair_distances(emb).tolist() == [2.0]
    assert xnorm(e_orig, e_flip) == 2.0  # norms 3, 1, 1, 3
    assert xnorm(e_orig) == 2.0
    np.testing.assert_allclose(flip_test_embeddings(np.array([[0.0, 2.0]])), [[0, 1]])


def test_tar_reported_only_where_resolvable():
    rng = np.random.default_rng(1)
    p = 2000
    same = np.arange(p) % 2 == 0  # 1000 impostor pairs
    e = rng.normal(size=(2 * p, 16))
    e[1::2][same] = e[0::2][same] + rng.normal(scale=0.3, size=(same.sum(), 16))
    result = evaluate_embeddings(e, None, same, flip=False)
    assert result.negative_pairs == 1000 and result.pairs == 2000
    assert result.tar_at_far[1e-4] is None
    assert 0.5 < result.tar_at_far[1e-3] <= 1.0
    assert result.to_json()["tar_at_far"] == {"1e-03": result.tar_at_far[1e-3], "1e-04": None}


def _half_colour_images(rng, base_left, base_right, noise=12):
    img = np.empty((112, 112, 3), dtype=np.int32)
    img[:, :56] = base_left
    img[:, 56:] = base_right
    img += rng.integers(-noise, noise + 1, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def _quadrant_embedding(pixels):
    x = preprocess.normalize(pixels).astype(np.float64)
    cells = [x[:56, :56], x[:56, 56:], x[56:, :56], x[56:, 56:]]
    return np.concatenate([c.mean(axis=(0, 1)) for c in cells])


def test_evaluate_bin_end_to_end_matches_analytic_embeddings(tmp_path):
    """A real .bin (PNG images) through decode -> Keras embedder -> flip -> protocol."""
    rng = np.random.default_rng(7)
    colours = rng.integers(30, 225, (8, 2, 3))
    images, issame = [], []
    for k in range(30):
        a = k % 8
        b = a if k % 2 == 0 else (a + 1 + k % 5) % 8
        images += [_half_colour_images(rng, *colours[a]), _half_colour_images(rng, *colours[b])]
        issame.append(a == b)
    path = tmp_path / "toy.bin"
    write_bin(path, [preprocess.encode_png(im) for im in images], issame)

    embedder = load_embedder(mean_colour_model(grid=2), batch_size=7)
    result = evaluate_bin(embedder, path, batch_size=16, n_folds=10)

    e_orig = np.stack([_quadrant_embedding(im) for im in images])
    e_flip = np.stack([_quadrant_embedding(im[:, ::-1]) for im in images])
    # The flipped embedding swaps left and right cells: a real mirror was embedded.
    assert not np.allclose(e_orig, e_flip, atol=0.05)
    expected = evaluate_embeddings(e_orig, e_flip, issame, name="toy", n_folds=10)
    assert result.name == "toy" and result.pairs == 30
    assert result.accuracy == expected.accuracy and result.fold_thresholds == expected.fold_thresholds
    assert result.xnorm == pytest.approx(expected.xnorm, rel=1e-5)
    assert result.accuracy > 0.9  # identities are separable by colour

    decoded = load_verification_set(path, decode=True)
    assert decoded.images.dtype == np.uint8 and decoded.images.shape == (60, 112, 112, 3)
    np.testing.assert_array_equal(decoded.images[3], images[3])


def test_bad_image_in_bin_names_file_and_index(tmp_path):
    path = tmp_path / "broken.bin"
    good = preprocess.encode_png(np.zeros((112, 112, 3), np.uint8))
    write_bin(path, [good, good, good, b"garbage"], [True, False])
    embedder = load_embedder(mean_colour_model())
    with pytest.raises(ValueError, match=r"broken.bin image 3: cannot decode"):
        evaluate_bin(embedder, path, n_folds=2)


def test_without_flip_only_originals_are_embedded(tmp_path):
    rng = np.random.default_rng(3)
    images = [_half_colour_images(rng, *rng.integers(30, 225, (2, 3))) for _ in range(8)]
    path = tmp_path / "noflip.bin"
    write_bin(path, [preprocess.encode_png(im) for im in images], [True, False, True, False])
    result = evaluate_bin(load_embedder(mean_colour_model(grid=2)), path, n_folds=2, flip=False)
    e_orig = np.stack([_quadrant_embedding(im) for im in images])
    expected = evaluate_embeddings(e_orig, None, [True, False, True, False], n_folds=2, flip=False)
    assert result.xnorm == pytest.approx(expected.xnorm, rel=1e-5)
    assert result.accuracy == expected.accuracy
