"""pocketnet_tf.face.gallery: the gallery shared with the Android app (format, search, failures)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pocketnet_tf.face.gallery import Gallery, dot, l2_normalize

SHA = "0123456789abcdef" * 4


def test_search_threshold_ranking_and_ties():
    g = Gallery(SHA, 3)
    g.enrol("alice", [1, 0, 0])
    g.enrol("alice", [0, 0, 2])
    g.enrol("bob", [0, 5, 0])
    m = g.search([0.1, 0, 1], 0.9)
    assert (m.name, m.accepted) == ("alice", True)
    assert m.score == pytest.approx(1 / np.sqrt(1.01), abs=1e-7)
    assert [n for n, _ in m.ranking] == ["alice", "bob"] and m.ranking[1][1] == 0.0
    weak = g.search([1, 1, 0], 0.75)
    assert (weak.name, weak.accepted) == ("alice", False)  # tie with bob: enrolled first wins
    assert weak.ranking[0][1] == weak.ranking[1][1] == pytest.approx(np.sqrt(0.5), abs=1e-7)
    empty = Gallery(SHA, 3).search([1, 0, 0], 0.3)
    assert empty.name is None and not empty.accepted and empty.ranking == []


def test_arithmetic_is_sequential_float64():
    v = np.random.default_rng(0).normal(size=128).astype(np.float32)
    u = l2_normalize(v)
    s = 0.0
    for x in v.astype(np.float64):
        s += x * x
    np.testing.assert_array_equal(u, (v.astype(np.float64) / np.sqrt(s)).astype(np.float32))
    t = 0.0
    for a, b in zip(u.astype(np.float64), v.astype(np.float64)):
        t += a * b
    assert dot(u, v) == t
    with pytest.raises(ValueError, match="norm 0.0"):
        l2_normalize(np.zeros(4))


def test_save_load_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    g = Gallery(SHA, 64)
    for name in ["Zoë", "名前", "o'brien \"q\""]:
        for _ in range(2):
            g.enrol(name, rng.normal(size=64))
    path = tmp_path / "sub" / "gallery.json"
    g.save(path)
    back = Gallery.load(path, SHA)
    assert back.names == g.names
    for name in g.names:
        for a, b in zip(back.embeddings_of(name), g.embeddings_of(name)):
            np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in path.parent.iterdir()) == ["gallery.json"]


@pytest.mark.parametrize("mutate,fragment", [
    (lambda o: o.update(format="x"), "not a gallery file"),
    (lambda o: o.update(version=2), "version 2 is not supported"),
    (lambda o: o.update(model_sha256="abc"), "64 lowercase hex"),
    (lambda o: o["identities"][0].update(embeddings=[[0.6, 0.7]]), "not unit length"),
    (lambda o: o["identities"][0].update(embeddings=[[1.0]]), "array of 2 numbers"),
    (lambda o: o["identities"][0].update(embeddings=[]), "has no embeddings"),
    (lambda o: o["identities"].append(dict(o["identities"][0])), "appears twice"),
    (lambda o: o["identities"][0].update(name=" a"), "start or end with spaces"),
    (lambda o: o["identities"][0].update(name="a\x01b"), "control character"),
])
def test_bad_galleries_are_refused_with_the_file_named(tmp_path, mutate, fragment):
    g = Gallery(SHA, 2)
    g.enrol("a", [1, 0])
    obj = g.to_json()
    mutate(obj)
    path = tmp_path / "g.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=fragment) as err:
        Gallery.load(path)
    assert str(path) in str(err.value)


def test_wrong_model_duplicate_keys_and_nan_are_refused(tmp_path):
    g = Gallery(SHA, 2)
    g.enrol("a", [1, 0])
    path = tmp_path / "g.json"
    g.save(path)
    with pytest.raises(ValueError, match="re-enrol with this model"):
        Gallery.load(path, "f" * 64)
    text = path.read_text()
    path.write_text(text.replace('"version": 1,', '"version": 1, "version": 1,'))
    with pytest.raises(ValueError, match="duplicate key"):
        Gallery.load(path)
    path.write_text(text.replace("1.0", "NaN"))
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        Gallery.load(path)
    with pytest.raises(FileNotFoundError, match="no such gallery file"):
        Gallery.load(tmp_path / "absent.json")
    with pytest.raises(ValueError, match="has 3 values, the gallery holds 2"):
        g.enrol("b", [1, 2, 3])
