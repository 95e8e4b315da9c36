"""The on-device verification bundle: model, metadata and golden test vectors.

Layout and formats are specified in ``tflite/README.md`` (section "Verification bundle"); in
short::

    DIR/model.tflite             the model, metadata embedded
    DIR/metadata.json            side-car metadata (source of truth, holds the model's sha256)
    DIR/report.json, report.md   the conversion report
    DIR/golden/golden.json       the test-vector index and tolerances
    DIR/golden/face_NNN.png      aligned RGB face, 8-bit, lossless
    DIR/golden/face_NNN.input.f32      the exact input tensor fed (little-endian float32, NHWC)
    DIR/golden/face_NNN.embedding.f32  the exact output of the model (little-endian float32)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pocketnet_tf.data import preprocess
from pocketnet_tf.export import metadata as metadata_lib

__all__ = ["GOLDEN_SCHEMA", "GOLDEN_TOLERANCES", "BundleError", "model_input", "verify_bundle", "write_golden"]

GOLDEN_SCHEMA = "pocketnet_tf.golden/1"
#: Tolerances for re-running the golden inputs on another device / runtime build: cosine to the
#: stored embedding and max abs difference relative to the stored embedding's largest magnitude.
GOLDEN_TOLERANCES = {
    "fp32": {"min_cosine": 0.99999, "max_abs_error_relative": 1e-4},
    "fp16": {"min_cosine": 0.9999, "max_abs_error_relative": 1e-3},
    "dynamic": {"min_cosine": 0.999, "max_abs_error_relative": 1e-2},
    "int8": {"min_cosine": 0.995, "max_abs_error_relative": 5e-2},
    "int16x8": {"min_cosine": 0.999, "max_abs_error_relative": 1e-2},
}
_INPUT_ATOL = 1e-6


class BundleError(ValueError):
    """A bundle that is incomplete, tampered with or does not reproduce its golden vectors."""


def model_input(pixels: np.ndarray, meta: dict) -> np.ndarray:
    """The float32 tensor the model takes for uint8 RGB ``pixels``, per the metadata's
    ``input.normalization`` (``(pixel - mean) / std``)."""
    norm = meta["input"]["normalization"]
    mean, std = float(norm["mean"]), float(norm["std"])
    if (mean, std) == (preprocess.MEAN, preprocess.STD):
        return preprocess.normalize(pixels)
    return (np.asarray(pixels, np.float32) - np.float32(mean)) / np.float32(std)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_golden(directory, *, model_bytes: bytes, meta: dict, faces: np.ndarray, mode: str) -> dict:
    """Writes ``directory/golden/*`` for ``faces`` (uint8 ``(N, H, W, 3)``) by running the final
    model bytes with LiteRT; returns the ``golden.json`` content."""
    from pocketnet_tf.export.runtime import TFLiteRunner

    golden = Path(directory) / "golden"
    golden.mkdir(parents=True, exist_ok=True)
    runner = TFLiteRunner(model_bytes, source="model.tflite")
    cases = []
    for i, face in enumerate(np.asarray(faces, np.uint8)):
        stem = f"face_{i:03d}"
        x = model_input(face[None], meta).astype("<f4")
        y = runner.run(x).astype("<f4")[0]
        png = preprocess.encode_png(face)
        files = {"image": f"{stem}.png", "input": f"{stem}.input.f32", "embedding": f"{stem}.embedding.f32"}
        (golden / files["image"]).write_bytes(png)
        (golden / files["input"]).write_bytes(x.tobytes())
        (golden / files["embedding"]).write_bytes(y.tobytes())
        cases.append(
            {
                **files,
                "image_sha256": _sha256(png),
                "input_sha256": _sha256(x.tobytes()),
                "embedding_sha256": _sha256(y.tobytes()),
                "embedding_norm": float(np.linalg.norm(y.astype(np.float64))),
            }
        )
    index = {
        "schema": GOLDEN_SCHEMA,
        "model_sha256": None,  # filled in by the caller once the model file is final
        "input_shape": [1, *[int(v) for v in faces.shape[1:]]],
        "input_dtype": "float32",
        "embedding_size": int(meta["output"]["embedding_size"]),
        "byte_order": "little",
        "tolerance": GOLDEN_TOLERANCES[mode],
        "cases": cases,
    }
    return index


def _load_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise BundleError(f"{path}: expected a JSON object")
    return value


def _read_f32(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise BundleError(f"{path}: missing")
    data = path.read_bytes()
    if len(data) != 4 * count:
        raise BundleError(f"{path}: {len(data)} bytes, expected {4 * count} ({count} float32 values)")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def verify_bundle(directory, *, num_threads: int = 1) -> dict:
    """Re-checks a bundle: model hash, embedded == side-car metadata, each golden image -> input
    tensor, and each input -> embedding through LiteRT within the stated tolerance.

    Returns:
      A summary dict (per-case cosine and max abs error).

    Raises:
      BundleError: naming the file and what does not match.
    """
    from pocketnet_tf.export.runtime import TFLiteRunner

    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a directory")
    meta = _load_json(directory / "metadata.json")
    if meta.get("schema") != metadata_lib.SCHEMA:
        raise BundleError(f"{directory / 'metadata.json'}: schema {meta.get('schema')!r}, expected {metadata_lib.SCHEMA!r}")
    model_path = directory / meta["model"]["file"]
    if not model_path.is_file():
        raise BundleError(f"{model_path}: missing")
    digest = metadata_lib.sha256_file(model_path)
    if digest != meta["model"]["sha256"]:
        raise BundleError(f"{model_path}: sha256 {digest} does not match metadata.json ({meta['model']['sha256']})")
    try:
        embedded = metadata_lib.read_embedded_metadata(model_path)
    except ValueError as err:
        raise BundleError(str(err)) from None
    if embedded != metadata_lib.embedded_view(meta):
        raise BundleError(f"{model_path}: embedded metadata differs from metadata.json")
    golden_dir = directory / "golden"
    golden = _load_json(golden_dir / "golden.json")
    if golden.get("schema") != GOLDEN_SCHEMA:
        raise BundleError(f"{golden_dir / 'golden.json'}: schema {golden.get('schema')!r}, expected {GOLDEN_SCHEMA!r}")
    if golden.get("model_sha256") != digest:
        raise BundleError(f"{golden_dir / 'golden.json'}: golden vectors were made for model {golden.get('model_sha256')}, "
                          f"the bundle holds {digest}")
    if not golden.get("cases"):
        raise BundleError(f"{golden_dir / 'golden.json'}: no test cases")
    shape = [int(v) for v in golden["input_shape"]]
    size = int(np.prod(shape))
    emb = int(golden["embedding_size"])
    tol = golden["tolerance"]
    runner = TFLiteRunner(model_path, num_threads=num_threads)
    results = []
    for case in golden["cases"]:
        image_path = golden_dir / case["image"]
        if not image_path.is_file():
            raise BundleError(f"{image_path}: missing")
        pixels = preprocess.decode_image(image_path.read_bytes(), source=str(image_path), size=shape[1])
        x = _read_f32(golden_dir / case["input"], size).reshape(shape)
        expected_input = model_input(pixels[None], meta)
        if not np.allclose(x, expected_input, rtol=0, atol=_INPUT_ATOL):
            raise BundleError(
                f"{golden_dir / case['input']}: input tensor is not {case['image']} normalised as metadata.json says "
                f"(max diff {np.abs(x - expected_input).max():.3g})"
            )
        stored = _read_f32(golden_dir / case["embedding"], emb)
        got = runner.run(x)[0]
        cos = float(np.dot(got, stored) / max(np.linalg.norm(got) * np.linalg.norm(stored), 1e-30))
        err = float(np.abs(got - stored).max())
        limit = tol["max_abs_error_relative"] * float(np.abs(stored).max())
        results.append({"case": case["image"], "cosine": cos, "max_abs_error": err, "bit_exact": bool(np.array_equal(got, stored))})
        if not (cos >= tol["min_cosine"] and err <= limit):
            raise BundleError(
                f"{golden_dir / case['embedding']}: LiteRT gives cosine {cos:.6f} / max abs error {err:.4g} against the "
                f"stored embedding; tolerance cosine >= {tol['min_cosine']}, error <= {limit:.4g}"
            )
    return {"bundle": str(directory), "model_sha256": digest, "cases": results, "passed": True}
