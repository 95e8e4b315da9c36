"""The bundle seal and the one validator of a bundle's JSON (``tflite/README.md``, "Verification
bundle").

Every regular file of a bundle except ``metadata.json`` and ``manifest.json`` is listed with its
size and SHA-256 in ``manifest.json`` (schema :data:`MANIFEST_SCHEMA`); ``metadata.json`` holds the
manifest's own SHA-256 under ``"bundle"``. :func:`open_bundle` checks the seal (no symlink, no file
over its bound, nothing missing, extra or changed) and the metadata's fields; every problem is a
:class:`BundleError` naming the file. The Java core (``VerificationBundle``) checks the same seal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import stat
from pathlib import Path, PurePosixPath

from pocketnet_tf.bounded import loads_json, read_bounded

__all__ = [
    "BundleError", "GOLDEN_TOLERANCES", "MANIFEST_FILE", "MANIFEST_SCHEMA", "METADATA_FILE", "SealedBundle",
    "check_metadata", "open_bundle", "read_json", "write_manifest",
]

MANIFEST_SCHEMA = "pocketnet_tf.bundle_manifest/1"
MANIFEST_FILE = "manifest.json"
METADATA_FILE = "metadata.json"
METADATA_SCHEMA = "pocketnet_tf.tflite_metadata/1"
#: Size bounds: JSON files, the model, each golden file (a 112x112 PNG or tensor is ~150 KB).
MAX_JSON_BYTES = 1 << 20
MAX_MODEL_BYTES = 256 << 20
MAX_GOLDEN_BYTES = 16 << 20
#: Tolerances for re-running the golden inputs on another device / runtime build, per export mode:
#: cosine to the stored embedding and max abs difference relative to its largest magnitude. The
#: verifiers use this table, never the copy in ``golden.json`` (which may only be as strict or stricter).
GOLDEN_TOLERANCES = {
    "fp32": {"min_cosine": 0.99999, "max_abs_error_relative": 1e-4},
    "fp16": {"min_cosine": 0.9999, "max_abs_error_relative": 1e-3},
    "dynamic": {"min_cosine": 0.999, "max_abs_error_relative": 1e-2},
    "int8": {"min_cosine": 0.995, "max_abs_error_relative": 5e-2},
    "int16x8": {"min_cosine": 0.999, "max_abs_error_relative": 1e-2},
}
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: What a later, failed conversion writes beside an earlier bundle (never part of a bundle, never
#: read by an app); the only top-level files a verifier ignores.
FAILED_REPORTS = ("failed_report.json", "failed_report.md")


class BundleError(ValueError):
    """A bundle that is malformed, incomplete, tampered with or does not reproduce its golden vectors."""


@dataclasses.dataclass(frozen=True)
class SealedBundle:
    """A bundle whose seal and metadata checked out: every listed file has the stated bytes."""

    directory: Path
    metadata: dict
    files: dict  # relative POSIX path -> {"bytes", "sha256"}

    def path(self, relative: str) -> Path:
        return self.directory.joinpath(*PurePosixPath(relative).parts)


def _bound(relative: str, model_file: str | None) -> int:
    if relative == model_file:
        return MAX_MODEL_BYTES
    if relative.endswith(".json"):
        return MAX_JSON_BYTES
    return MAX_GOLDEN_BYTES


def read_json(path: Path) -> dict:
    """A bundle JSON file (symlinks refused, at most 1 MiB, a JSON object) or BundleError."""
    data = read_bounded(path, MAX_JSON_BYTES, what="bundle JSON file", allow_symlink=False, error=BundleError)
    value = loads_json(data, str(path), error=BundleError)
    if not isinstance(value, dict):
        raise BundleError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _sha256_bounded(path: Path, limit: int) -> tuple[int, str]:
    data = read_bounded(path, limit, what="bundle file", allow_symlink=False, error=BundleError)
    return len(data), hashlib.sha256(data).hexdigest()


def _walk(directory: Path) -> list[str]:
    """Relative POSIX paths of every file below ``directory``; refuses symlinks and special files."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        for name in [*dirs, *files]:
            full = Path(root) / name
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                raise BundleError(f"{full}: symbolic links are not allowed in a bundle")
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise BundleError(f"{full}: not a regular file")
            if stat.S_ISREG(mode):
                found.append(full.relative_to(directory).as_posix())
    return sorted(found)


def write_manifest(directory) -> dict:
    """Writes ``directory/manifest.json`` over every file but the metadata and the manifest;
    returns the ``"bundle"`` entry for ``metadata.json``."""
    directory = Path(directory)
    entries = []
    for relative in _walk(directory):
        if relative in (METADATA_FILE, MANIFEST_FILE, *FAILED_REPORTS):
            continue
        data = (directory / relative).read_bytes()
        entries.append({"path": relative, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    text = json.dumps({"schema": MANIFEST_SCHEMA, "files": entries}, indent=2, sort_keys=True) + "\n"
    (directory / MANIFEST_FILE).write_bytes(text.encode("utf-8"))
    return {"manifest": MANIFEST_FILE, "manifest_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}


def _manifest_entries(manifest: dict, path: Path) -> dict:
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise BundleError(f"{path}: schema {str(manifest.get('schema'))[:80]!r}, expected {MANIFEST_SCHEMA!r}")
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise BundleError(f"{path}: 'files' must be a non-empty list")
    out: dict = {}
    for i, entry in enumerate(files):
        if not isinstance(entry, dict) or set(entry) != {"path", "bytes", "sha256"}:
            raise BundleError(f"{path}: files[{i}] must be {{'path', 'bytes', 'sha256'}}")
        rel, size, digest = entry["path"], entry["bytes"], entry["sha256"]
        if not isinstance(rel, str) or not _plain_relative(rel) or rel in (METADATA_FILE, MANIFEST_FILE, *FAILED_REPORTS):
            raise BundleError(f"{path}: files[{i}].path {str(rel)[:120]!r} is not a relative path inside the bundle")
        if type(size) is not int or size < 0 or not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise BundleError(f"{path}: files[{i}] ({rel}) needs a byte count and 64 lowercase hex digits")
        if out and rel <= list(out)[-1]:
            raise BundleError(f"{path}: files must be sorted by path without repeats ({rel!r})")
        out[rel] = {"bytes": size, "sha256": digest}
    return out


def _plain_relative(rel: str) -> bool:
    parts = rel.split("/")
    return bool(rel) and "\\" not in rel and "\0" not in rel and not rel.startswith("/") and all(
        p not in ("", ".", "..") for p in parts)


def _check_files(directory: Path, files: dict, model_file: str, manifest_path: Path) -> None:
    present = set(_walk(directory)) - {METADATA_FILE, MANIFEST_FILE, *FAILED_REPORTS}
    missing, extra = sorted(set(files) - present), sorted(present - set(files))
    if missing:
        raise BundleError(f"{directory / missing[0]}: listed in {manifest_path} but missing")
    if extra:
        raise BundleError(f"{directory / extra[0]}: not listed in {manifest_path} (extra file in a sealed bundle)")
    for rel, entry in files.items():
        full = directory / rel
        limit = _bound(rel, model_file)
        if entry["bytes"] > limit:
            raise BundleError(f"{full}: {entry['bytes']} bytes listed; at most {limit} are accepted")
        size, digest = _sha256_bounded(full, limit)
        if size != entry["bytes"] or digest != entry["sha256"]:
            raise BundleError(f"{full}: {size} bytes with SHA-256 {digest} does not match {manifest_path} "
                              f"({entry['bytes']} bytes, {entry['sha256']})")


def open_bundle(directory, *, app: bool = False) -> SealedBundle:
    """Checks ``directory``'s metadata and seal; ``app`` adds the Android app's limits.

    Raises:
      BundleError: naming the file and the problem.
    """
    directory = Path(directory)
    if not directory.is_dir():  # the directory itself may be reached through a link (convert --out)
        raise BundleError(f"{directory}: not a bundle directory")
    meta_path = directory / METADATA_FILE
    meta = read_json(meta_path)
    check_metadata(meta, meta_path, app=app)
    seal = _field(meta, "bundle", "obj", "", meta_path)
    if _field(seal, "manifest", "str", "bundle.", meta_path) != MANIFEST_FILE:
        raise BundleError(f"{meta_path}: field 'bundle.manifest' must be {MANIFEST_FILE!r}")
    expected = _field(seal, "manifest_sha256", "str", "bundle.", meta_path)
    manifest_path = directory / MANIFEST_FILE
    raw = read_bounded(manifest_path, MAX_JSON_BYTES, what="bundle manifest", allow_symlink=False, error=BundleError)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected:
        raise BundleError(f"{manifest_path}: SHA-256 {digest} does not match {expected} in {meta_path}")
    manifest = loads_json(raw, str(manifest_path), error=BundleError)
    files = _manifest_entries(manifest if isinstance(manifest, dict) else {}, manifest_path)
    model_file = meta["model"]["file"]
    if model_file not in files or files[model_file]["sha256"] != meta["model"]["sha256"]:
        listed = files.get(model_file, {}).get("sha256")
        raise BundleError(f"{directory / model_file}: SHA-256 {listed} in {manifest_path} does not match "
                          f"model.sha256 {meta['model']['sha256']} in {meta_path} (corrupt or replaced model)")
    _check_files(directory, files, model_file, manifest_path)
    return SealedBundle(directory, meta, files)


# ---------------------------------------------------------------------------------------------
# metadata.json fields


def _field(obj, key, kind, where, path, *, nullable=False):
    if not isinstance(obj, dict) or key not in obj or (obj[key] is None and not nullable):
        raise BundleError(f"{path}: missing field '{where}{key}'")
    value = obj[key]
    if value is None:
        return None
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "num": isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
        "bool": isinstance(value, bool),
        "obj": isinstance(value, dict),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        raise BundleError(f"{path}: field '{where}{key}' has the wrong type or value ({type(value).__name__})")
    return value


def _float_tensor(tensor, where, path):
    if _field(tensor, "dtype", "str", where, path) != "float32":
        raise BundleError(f"{path}: field '{where}dtype' must be 'float32', got {str(tensor['dtype'])[:40]!r}")
    if _field(tensor, "quantization", "obj", where, path, nullable=True) is not None:
        raise BundleError(f"{path}: field '{where}quantization' must be null: the app feeds and reads float32 "
                          "tensors only")


def _ints(values, path, field, length) -> list[int]:
    if not isinstance(values, list) or len(values) != length or not all(type(v) is int for v in values):
        raise BundleError(f"{path}: field '{field}' must be a list of {length} integers")
    return values


def check_metadata(meta: dict, path, *, app: bool = False) -> None:
    """Checks the fields of a ``metadata.json`` (schema ``pocketnet_tf.tflite_metadata/1``);
    ``app``: also the app's limits (static batch 1, float32 tensors without quantisation)."""
    if _field(meta, "schema", "str", "", path) != METADATA_SCHEMA:
        raise BundleError(f"{path}: field 'schema' is {meta['schema'][:80]!r}; expected {METADATA_SCHEMA!r}")
    model = _field(meta, "model", "obj", "", path)
    model_file = _field(model, "file", "str", "model.", path)
    if not model_file or Path(model_file).name != model_file or model_file.startswith(".") or "\\" in model_file:
        raise BundleError(f"{path}: field 'model.file' must be a plain file name, got {model_file[:120]!r}")
    if not _HEX64.fullmatch(_field(model, "sha256", "str", "model.", path)):
        raise BundleError(f"{path}: field 'model.sha256' must be 64 lowercase hex digits")
    if _field(model, "mode", "str", "model.", path) not in GOLDEN_TOLERANCES:
        raise BundleError(f"{path}: field 'model.mode' must be one of {sorted(GOLDEN_TOLERANCES)}")
    _check_input(_field(meta, "input", "obj", "", path), path, app)
    shape = meta["input"]["shape"]
    out = _field(meta, "output", "obj", "", path)
    embedding_size = _field(out, "embedding_size", "int", "output.", path)
    out_shape = _field(out, "shape", "list", "output.", path)
    if embedding_size <= 0 or out_shape != [shape[0], embedding_size]:
        raise BundleError(f"{path}: output.embedding_size must be positive and match output.shape [1, D]")
    _field(out, "l2_normalized", "bool", "output.", path)
    if app:
        _float_tensor(out, "output.", path)
    _check_alignment(_field(meta, "alignment", "obj", "", path), shape, path)
    _check_verification(_field(meta, "verification", "obj", "", path, nullable=True), path)


def _check_input(inp: dict, path, app: bool) -> None:
    shape = _field(inp, "shape", "list", "input.", path)
    if app and (shape[:1] != [1] or len(shape) != 4):
        raise BundleError(f"{path}: input must be NHWC [1, H, W, 3] (static batch 1; export without "
                          f"--dynamic_batch), got {str(shape)[:80]}")
    shape = _ints(shape, path, "input.shape", 4)
    if shape[0] not in (-1, 1) or shape[3] != 3 or min(shape[1:3]) <= 0 or _field(
            inp, "layout", "str", "input.", path) != "NHWC":
        raise BundleError(f"{path}: input must be NHWC [1 or -1, H, W, 3], got {shape} {str(inp.get('layout'))[:20]}")
    if _field(inp, "color", "str", "input.", path) != "RGB":
        raise BundleError(f"{path}: field 'input.color' must be 'RGB'")
    if app:
        _float_tensor(inp, "input.", path)
    norm = _field(inp, "normalization", "obj", "input.", path)
    _field(norm, "mean", "num", "input.normalization.", path)
    if not _field(norm, "std", "num", "input.normalization.", path) > 0:
        raise BundleError(f"{path}: field 'input.normalization.std' must be a positive number, got {norm['std']}")


def _check_alignment(alignment: dict, shape: list, path) -> None:
    template = _field(alignment, "template", "list", "alignment.", path)
    if len(template) != 5 or not all(
            isinstance(p, list) and len(p) == 2 and all(_is_finite_number(v) for v in p) for p in template):
        raise BundleError(f"{path}: field 'alignment.template' must be 5 (x, y) points")
    if _field(alignment, "output_size", "list", "alignment.", path) != [shape[1], shape[2]]:
        raise BundleError(f"{path}: alignment.output_size must equal the model input size {shape[1:3]}")


def _check_verification(ver, path) -> None:
    if ver is None:
        return
    if _field(ver, "metric", "str", "verification.", path) != "cosine":
        raise BundleError(f"{path}: field 'verification.metric' must be 'cosine'")
    if not -1.0 <= _field(ver, "threshold", "num", "verification.", path) <= 1.0:
        raise BundleError(f"{path}: verification.threshold must be a cosine in [-1, 1], got {ver['threshold']}")
    _field(ver, "far_target", "num", "verification.", path)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
