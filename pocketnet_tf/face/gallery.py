"""The on-device gallery format, shared with the Android demo (``org.pocketnet.core.Gallery``).

A gallery holds named identities, each with one or more enrolled L2-normalised float32
embeddings, and is tied to one model by its SHA-256 (embeddings of different models are not
comparable). UTF-8 JSON::

    {
      "format": "pocketnet_tf.gallery",
      "version": 1,
      "model_sha256": "<64 hex digits>",
      "embedding_size": 128,
      "identities": [{"name": "alice", "embeddings": [[0.01, ...], ...]}]
    }

Matching: the query is L2-normalised; an identity's score is the largest cosine (dot product of
unit vectors) over its embeddings -- the pair score the verification threshold is calibrated on;
the best identity wins (ties: the one enrolled first) and is accepted when ``score >= threshold``.

Arithmetic is the Java side's, step for step, so both give the same bits: squares and products
of float32 values are exact in float64 and are summed sequentially in index order
(``np.add.accumulate``), the norm is ``sqrt`` of that sum, the unit vector is
``float32(v / norm)``. Files are written atomically (:mod:`pocketnet_tf.io_utils`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from pocketnet_tf.io_utils import write_text_atomic

__all__ = ["FORMAT", "VERSION", "Gallery", "Match", "dot", "l2_normalize"]

FORMAT = "pocketnet_tf.gallery"
VERSION = 1
MAX_NAME_LENGTH = 100
_UNIT_NORM_TOLERANCE = 1e-4
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _sequential_sum(values: np.ndarray) -> float:
    return float(np.add.accumulate(values)[-1]) if values.size else 0.0


def l2_normalize(vector) -> np.ndarray:
    """``float32(v / ||v||)`` with the norm summed in float64 in index order.

    Raises:
      ValueError: zero or non-finite norm.
    """
    v = np.asarray(vector, dtype=np.float32).reshape(-1).astype(np.float64)
    norm = float(np.sqrt(_sequential_sum(v * v)))
    if not (norm > 0.0 and np.isfinite(norm)):
        raise ValueError(f"cannot L2-normalise a vector of norm {norm}")
    return (v / norm).astype(np.float32)


def dot(a, b) -> float:
    """Dot product of two float32 vectors in float64, summed in index order."""
    a64 = np.asarray(a, dtype=np.float32).reshape(-1).astype(np.float64)
    b64 = np.asarray(b, dtype=np.float32).reshape(-1).astype(np.float64)
    if a64.shape != b64.shape:
        raise ValueError(f"embeddings differ in size: {a64.size} vs {b64.size}")
    return _sequential_sum(a64 * b64)


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError("identity name must not be empty")
    if name != name.strip():
        raise ValueError(f"identity name must not start or end with spaces: {name!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"identity name is longer than {MAX_NAME_LENGTH} characters")
    # Java's Character.isISOControl: U+0000..U+001F and U+007F..U+009F.
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in name):
        raise ValueError(f"identity name contains a control character: {name!r}")
    return name


class Match:
    """A search result: best ``name`` (None for an empty gallery), its ``score``, ``accepted``
    (score >= threshold) and ``ranking`` [(name, score)] best first, ties in enrolment order."""

    def __init__(self, name, score, accepted, threshold, ranking):
        self.name, self.score, self.accepted, self.threshold, self.ranking = name, score, accepted, threshold, ranking

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "score": None if self.name is None else self.score,
            "accepted": self.accepted,
            "threshold": self.threshold,
            "ranking": [{"name": n, "score": s} for n, s in self.ranking],
        }


class Gallery:
    """Named identities with unit embeddings, tied to a model's SHA-256."""

    def __init__(self, model_sha256: str, embedding_size: int):
        if not isinstance(model_sha256, str) or not _SHA256.fullmatch(model_sha256):
            raise ValueError(f"model_sha256 must be 64 lowercase hex digits, got {model_sha256!r}")
        if not isinstance(embedding_size, int) or isinstance(embedding_size, bool) or embedding_size <= 0:
            raise ValueError(f"embedding_size must be a positive integer, got {embedding_size!r}")
        self.model_sha256 = model_sha256
        self.embedding_size = embedding_size
        self._identities: dict[str, list[np.ndarray]] = {}

    @property
    def names(self) -> list[str]:
        return list(self._identities)

    def __len__(self) -> int:
        return len(self._identities)

    def embeddings_of(self, name: str) -> list[np.ndarray]:
        return list(self._identities.get(name, []))

    def _check_size(self, vector, what: str) -> np.ndarray:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.size != self.embedding_size:
            raise ValueError(f"{what} has {v.size} values, the gallery holds {self.embedding_size}")
        return v

    def enrol(self, name: str, embedding) -> None:
        """Adds one raw embedding (normalised here) to ``name``, creating the identity."""
        _check_name(name)
        v = self._check_size(embedding, f"embedding of {name!r}")
        self._identities.setdefault(name, []).append(l2_normalize(v))

    def remove(self, name: str) -> bool:
        return self._identities.pop(name, None) is not None

    def search(self, embedding, threshold: float) -> Match:
        q = l2_normalize(self._check_size(embedding, "query embedding"))
        scores = [(name, max(dot(q, e) for e in embs)) for name, embs in self._identities.items()]
        ranking = sorted(scores, key=lambda item: -item[1])  # stable: ties keep enrolment order
        if not ranking:
            return Match(None, float("nan"), False, threshold, [])
        name, score = ranking[0]
        return Match(name, score, score >= threshold, threshold, ranking)

    # ------------------------------------------------------------------------------ file format

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "model_sha256": self.model_sha256,
            "embedding_size": self.embedding_size,
            "identities": [
                {"name": name, "embeddings": [[float(x) for x in e] for e in embs]}
                for name, embs in self._identities.items()
            ],
        }

    @classmethod
    def from_json(cls, obj, source: str = "<gallery>") -> "Gallery":
        def fail(msg):
            raise ValueError(f"{source}: {msg}")

        if not isinstance(obj, dict):
            fail("top-level JSON value must be an object")
        if obj.get("format") != FORMAT:
            fail(f"not a gallery file (format {obj.get('format')!r}, expected {FORMAT!r})")
        if obj.get("version") != VERSION:
            fail(f"gallery version {obj.get('version')!r} is not supported (expected {VERSION})")
        try:
            gallery = cls(obj.get("model_sha256"), obj.get("embedding_size"))
        except ValueError as err:
            fail(str(err))
        identities = obj.get("identities")
        if not isinstance(identities, list):
            fail("field 'identities' must be an array")
        for i, ident in enumerate(identities):
            if not isinstance(ident, dict):
                fail(f"field 'identities[{i}]' must be an object")
            name = ident.get("name")
            try:
                _check_name(name)
            except ValueError as err:
                fail(str(err))
            if name in gallery._identities:
                fail(f"identity {name!r} appears twice")
            embs = ident.get("embeddings")
            if not isinstance(embs, list) or not embs:
                fail(f"identity {name!r} has no embeddings")
            stored = []
            for r, row in enumerate(embs):
                if (not isinstance(row, list) or len(row) != gallery.embedding_size
                        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in row)):
                    fail(f"identity {name!r} embedding {r} must be an array of {gallery.embedding_size} numbers")
                v = np.asarray(row, dtype=np.float64).astype(np.float32)
                if not np.all(np.isfinite(v)):
                    fail(f"identity {name!r} embedding {r} has a non-finite value")
                norm = float(np.sqrt(_sequential_sum(v.astype(np.float64) ** 2)))
                if abs(norm - 1.0) > _UNIT_NORM_TOLERANCE:
                    fail(f"identity {name!r} embedding {r} is not unit length (norm {norm})")
                stored.append(v)
            gallery._identities[name] = stored
        return gallery

    @classmethod
    def load(cls, path, expected_model_sha256: str | None = None) -> "Gallery":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such gallery file") from None
        try:
            obj = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from None
        gallery = cls.from_json(obj, str(path))
        if expected_model_sha256 is not None and gallery.model_sha256 != expected_model_sha256:
            raise ValueError(
                f"{path}: gallery was enrolled with model {gallery.model_sha256}, the loaded model is "
                f"{expected_model_sha256} (re-enrol with this model)"
            )
        return gallery

    def save(self, path) -> None:
        """Writes the gallery atomically (temporary file, fsync, rename)."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=2) + "\n")


def _reject_constant(name):
    raise json.JSONDecodeError(f"{name} is not valid JSON", name, 0)


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise json.JSONDecodeError(f"duplicate key {key!r}", key, 0)
        out[key] = value
    return out
