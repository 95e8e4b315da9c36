"""Agreement statistics, pass/fail rules and the FAR threshold on hand-made numbers."""

import numpy as np
import pytest

from pocketnet_tf.export import validate


def test_embedding_agreement_values():
    ref = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    conv = np.array([[1.0, 1.0], [0.0, 2.0], [3.0, 4.5]])
    a = validate.embedding_agreement(ref, conv)
    cos = np.array([1 / np.sqrt(2), 1.0, (9 + 18) / (5 * np.sqrt(9 + 20.25))])
    assert a["cosine_min"] == pytest.approx(cos.min()) and a["worst_image"] == 0
    assert a["cosine_mean"] == pytest.approx(cos.mean())
    assert a["cosine_p01"] == pytest.approx(np.percentile(cos, 1))
    assert a["max_abs_error"] == pytest.approx(1.0)
    # A NaN embedding is the worst possible agreement, never a pass.
    conv[1] = np.nan
    assert validate.embedding_agreement(ref, conv)["cosine_min"] == -1.0


def test_check_reasons():
    th = validate.Thresholds(min_cosine=0.9, mean_cosine=0.95, p01_cosine=None, max_accuracy_drop=0.5)
    good = {"cosine_min": 0.91, "cosine_mean": 0.96, "cosine_p01": 0.0, "max_abs_error": 9.0, "images": 4}
    assert validate.check(good, th) == []
    bad = dict(good, cosine_min=0.5)
    (reason,) = validate.check(bad, th)
    assert reason.startswith("min cosine 0.500000 < 0.9")
    ver = {"lfw": {"keras": {"accuracy": 0.99}, "tflite": {"accuracy": 0.98}}}
    (reason,) = validate.check(good, th, ver)
    assert "lfw" in reason and "drop 1.00 > 0.5" in reason


def test_threshold_at_far():
    # 4 pairs: genuine cosines 0.9, 0.5; impostor cosines 0.6, 0.1 (embeddings on the unit circle).
    def pair(c):
        return [[1.0, 0.0], [c, np.sqrt(1 - c * c)]]

    e = np.array(pair(0.9) + pair(0.6) + pair(0.5) + pair(0.1))
    issame = [True, False, True, False]
    cal = validate.calibrate_threshold(e, issame, far=0.5, source="t")
    # One of two impostors may pass: accept strictly above the second-highest impostor (0.1).
    assert cal["threshold"] == pytest.approx(0.1) and cal["threshold"] > 0.1
    assert cal["far_measured"] == 0.5 and cal["tar"] == 1.0
    cal = validate.calibrate_threshold(e, issame, far=0.1, source="t")
    assert cal["threshold"] == pytest.approx(0.6) and cal["threshold"] > 0.6
    assert cal["far_measured"] == 0.0 and cal["tar"] == 0.5
    assert "resolution" in cal["far_resolution_note"]
    with pytest.raises(ValueError, match="impostor"):
        validate.calibrate_threshold(e[:2], [True], far=0.1, source="t")
