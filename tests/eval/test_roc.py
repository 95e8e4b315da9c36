"""ROC curve (scikit-learn-equivalent) and TAR@FAR read-outs against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from pocketnet_tf.eval.roc import auc, roc_curve, tar_at_far_bounded, tar_at_far_closest


def test_roc_documented_example():
    # The example in scikit-learn's roc_curve documentation (positive label 2 there).
    fpr, tpr, thr = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.8, 0.4, 0.35, 0.1])
    assert auc(fpr, tpr) == 0.75


def test_roc_drops_collinear_points():
    labels = [1, 1, 1, 0, 0, 0]
    scores = [6, 5, 4, 3, 2, 1]
    fpr, tpr, thr = roc_curve(labels, scores)
    np.testing.assert_array_equal(fpr, [0, 0, 0, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 6, 4, 1])
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, [0, 0, 0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_array_equal(thr, [np.inf, 6, 5, 4, 3, 2, 1])
    assert auc(fpr, tpr) == 1.0


def test_roc_tied_scores_form_one_point():
    fpr, tpr, thr = roc_curve([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1])
    np.testing.assert_array_equal(fpr, [0, 0, 0.5, 1])
    np.testing.assert_array_equal(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.5, 0.1])


def test_roc_needs_both_classes():
    with pytest.raises(ValueError, match="0 impostor"):
        roc_curve([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="3 labels but 2 scores"):
        roc_curve([1, 0, 1], [0.2, 0.3])


def test_closest_rule_breaks_ties_towards_larger_tar():
    fpr = np.array([0, 0, 0.5, 1])
    tpr = np.array([0, 0.5, 1, 1])
    # 0.1: two points at FPR 0 tie -> the one with TPR 0.5 (not 0).
    # 0.25: FPR 0 and 0.5 are equally close -> the larger TPR (1.0).
    # 0.6: FPR 0.5 is closest.
    assert tar_at_far_closest(fpr, tpr, [0.1, 0.25, 0.6, 0.9]) == {0.1: 0.5, 0.25: 1.0, 0.6: 1.0, 0.9: 1.0}


def test_bounded_rule_and_resolvability():
    # 1000 impostors: FAR 1e-3 allows exactly one false accept; 1e-4 is not resolvable.
    labels = np.r_[np.ones(10), np.zeros(1000)]
    scores = np.r_[0.95, 0.92, np.linspace(0.1, 0.3, 8), np.linspace(0.0, 0.4, 999), 0.9]
    fpr, tpr, _ = roc_curve(labels, scores)
    # Accepting the one impostor at 0.9 (FPR 1e-3) admits two genuine scores (0.95, 0.92); the
    # next impostor (0.4) would make FPR 2e-3.
    out = tar_at_far_bounded(fpr, tpr, 1000, (1e-3, 1e-4, 1.0))
    assert out[1e-4] is None
    assert out[1e-3] == pytest.approx(0.2)
    assert out[1.0] == 1.0
