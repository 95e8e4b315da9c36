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
    DIR/manifest.json            size and SHA-256 of every file above but metadata.json (the seal,
                                 :mod:`pocketnet_tf.export.seal`); metadata.json holds its SHA-256
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pocketnet_tf.data import preprocess
from pocketnet_tf.export import metadata as metadata_lib
from pocketnet_tf.export.seal import GOLDEN_TOLERANCES, BundleError, SealedBundle, open_bundle
from pocketnet_tf.export.seal import read_json as seal_read_json

__all__ = ["GOLDEN_SCHEMA", "GOLDEN_TOLERANCES", "BundleError", "model_input", "verify_bundle", "write_golden"]

GOLDEN_SCHEMA = "pocketnet_tf.golden/1"
_INPUT_ATOL = 1e-6


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


def _golden_index(sealed: SealedBundle) -> dict:
    """golden/golden.json, checked against the metadata, the manifest and the tolerance table."""
    path = sealed.path("golden/golden.json")
    if "golden/golden.json" not in sealed.files:
        raise BundleError(f"{path}: missing from the bundle's manifest")
    golden = seal_read_json(path)
    meta = sealed.metadata
    if golden.get("schema") != GOLDEN_SCHEMA:
        raise BundleError(f"{path}: schema {str(golden.get('schema'))[:80]!r}, expected {GOLDEN_SCHEMA!r}")
    if golden.get("model_sha256") != meta["model"]["sha256"]:
        raise BundleError(f"{path}: golden vectors were made for model {str(golden.get('model_sha256'))[:80]}, "
                          f"the bundle holds {meta['model']['sha256']}")
    height, width = meta["input"]["shape"][1:3]
    if golden.get("input_shape") != [1, height, width, 3]:
        raise BundleError(f"{path}: input_shape must be [1, {height}, {width}, 3] (metadata.json)")
    if golden.get("embedding_size") != meta["output"]["embedding_size"]:
        raise BundleError(f"{path}: embedding_size must be {meta['output']['embedding_size']} (metadata.json)")
    _check_tolerance(golden.get("tolerance"), GOLDEN_TOLERANCES[meta["model"]["mode"]], path)
    cases = golden.get("cases")
    if not isinstance(cases, list) or not cases:
        raise BundleError(f"{path}: no test cases")
    for i, case in enumerate(cases):
        for key in ("image", "input", "embedding"):
            name = case.get(key) if isinstance(case, dict) else None
            if not isinstance(name, str) or f"golden/{name}" not in sealed.files or "/" in name:
                raise BundleError(f"{path}: cases[{i}].{key} must name a file of golden/ listed in the manifest")
            if case.get(f"{key}_sha256") != sealed.files[f"golden/{name}"]["sha256"]:
                raise BundleError(f"{path}: cases[{i}].{key}_sha256 disagrees with the manifest for {name}")
    return golden


def _check_tolerance(stated, table: dict, path) -> None:
    """golden.json may state the table's tolerance or a stricter one, never a looser one."""
    if not isinstance(stated, dict):
        raise BundleError(f"{path}: 'tolerance' must be an object")
    cosine, relative = stated.get("min_cosine"), stated.get("max_abs_error_relative")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (cosine, relative)):
        raise BundleError(f"{path}: tolerance.min_cosine and max_abs_error_relative must be numbers")
    if not (cosine >= table["min_cosine"] and relative <= table["max_abs_error_relative"]):
        raise BundleError(f"{path}: tolerance {stated} is looser than the fixed table's {table} for this mode")


def _read_f32(path: Path, count: int) -> np.ndarray:
    data = path.read_bytes()  # sealed: a regular file of a checked size
    if len(data) != 4 * count:
        raise BundleError(f"{path}: {len(data)} bytes, expected {4 * count} ({count} float32 values)")
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def _check_embedded(sealed: SealedBundle) -> None:
    model_path = sealed.path(sealed.metadata["model"]["file"])
    try:
        embedded = metadata_lib.read_embedded_metadata(model_path)
    except ValueError as err:
        raise BundleError(str(err)) from None
    if embedded != metadata_lib.embedded_view(sealed.metadata):
        raise BundleError(f"{model_path}: embedded metadata differs from metadata.json (without 'bundle')")


def verify_bundle(directory, *, num_threads: int = 1) -> dict:
    """Re-checks a bundle: the seal (:func:`pocketnet_tf.export.seal.open_bundle`), embedded ==
    side-car metadata, each golden image -> input tensor, and each input -> embedding through
    LiteRT within the mode's fixed tolerance (:data:`GOLDEN_TOLERANCES`).

    Returns:
      A summary dict (per-case cosine and max abs error).

    Raises:
      BundleError: naming the file and what does not match.
    """
    from pocketnet_tf.export.runtime import TFLiteRunner

    sealed = open_bundle(directory)
    _check_embedded(sealed)
    golden = _golden_index(sealed)
    meta = sealed.metadata
    tol = GOLDEN_TOLERANCES[meta["model"]["mode"]]
    shape = golden["input_shape"]
    model_path = sealed.path(meta["model"]["file"])
    try:
        runner = TFLiteRunner(model_path, num_threads=num_threads)
    except Exception as err:  # the runtime raises bare RuntimeError/ValueError on a bad model
        raise BundleError(f"{model_path}: cannot load the model ({type(err).__name__}: {err})") from None
    results = [_check_case(sealed, case, runner, shape, tol) for case in golden["cases"]]
    return {"bundle": str(sealed.directory), "model_sha256": meta["model"]["sha256"], "cases": results,
            "tolerance": tol, "passed": True}


def _check_case(sealed: SealedBundle, case: dict, runner, shape: list, tol: dict) -> dict:
    golden_dir = sealed.path("golden")
    image_path = golden_dir / case["image"]
    try:
        pixels = preprocess.decode_image(image_path.read_bytes(), source=str(image_path), size=shape[1])
    except ValueError as err:
        raise BundleError(str(err)) from None
    x = _read_f32(golden_dir / case["input"], int(np.prod(shape))).reshape(shape)
    expected_input = model_input(pixels[None], sealed.metadata)
    if not np.allclose(x, expected_input, rtol=0, atol=_INPUT_ATOL):
        raise BundleError(
            f"{golden_dir / case['input']}: input tensor is not {case['image']} normalised as metadata.json says "
            f"(max diff {np.abs(x - expected_input).max():.3g})"
        )
    stored = _read_f32(golden_dir / case["embedding"], sealed.metadata["output"]["embedding_size"])
    got = runner.run(x)[0]
    cos = float(np.dot(got, stored) / max(np.linalg.norm(got) * np.linalg.norm(stored), 1e-30))
    err = float(np.abs(got - stored).max())
    limit = tol["max_abs_error_relative"] * float(np.abs(stored).max())
    if not (cos >= tol["min_cosine"] and err <= limit):
        raise BundleError(
            f"{golden_dir / case['embedding']}: LiteRT gives cosine {cos:.6f} / max abs error {err:.4g} against the "
            f"stored embedding; tolerance cosine >= {tol['min_cosine']}, error <= {limit:.4g}"
        )
    return {"case": case["image"], "cosine": cos, "max_abs_error": err, "bit_exact": bool(np.array_equal(got, stored))}
