"""The sealed bundle: manifest written by the converter, and every way a bundle can be malformed
or tampered with refused by ``verify_bundle`` (library and CLI) with a BundleError naming the file."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pocketnet_tf.export import bundle, seal
from pocketnet_tf.export.exporter import ExportConfig, run_export
from tests import factory


@pytest.fixture(scope="module")
def sealed(tmp_path_factory):
    root = tmp_path_factory.mktemp("seal")
    summary = factory.synthetic_faces(root / "data")
    factory.tiny_plain(seed=5).save(root / "plain.keras")
    out = root / "bundle"
    run_export(ExportConfig(model=str(root / "plain.keras"), mode="int8", out=str(out),
                            representative=str(root / "data"), bin=(summary["files"]["synth_val.bin"],),
                            num_calibration=8, num_validation=6, golden_count=2, max_accuracy_drop=100.0))
    return out


def reseal(directory) -> None:
    """What a forger who rewrites every hash would do: golden.json's per-file hashes, the manifest
    and metadata.json's manifest_sha256 made consistent with the files as they now are."""
    golden_path = directory / "golden" / "golden.json"
    golden = json.loads(golden_path.read_text())
    for case in golden["cases"]:
        for key in ("image", "input", "embedding"):
            case[f"{key}_sha256"] = hashlib.sha256((directory / "golden" / case[key]).read_bytes()).hexdigest()
    golden_path.write_text(json.dumps(golden))
    meta = json.loads((directory / "metadata.json").read_text())
    meta["bundle"] = seal.write_manifest(directory)
    (directory / "metadata.json").write_text(json.dumps(meta))


def _copy(src, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(src, target)
    return target


def _edit_json(path, edit):
    value = json.loads(path.read_text())
    edit(value)
    path.write_text(json.dumps(value))


def test_manifest_lists_every_file_and_metadata_holds_its_hash(sealed):
    manifest_bytes = (sealed / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    meta = json.loads((sealed / "metadata.json").read_text())
    assert meta["bundle"] == {"manifest": "manifest.json", "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
    files = sorted(p.relative_to(sealed).as_posix() for p in sealed.rglob("*") if p.is_file())
    assert manifest["schema"] == "pocketnet_tf.bundle_manifest/1"
    assert [f["path"] for f in manifest["files"]] == [f for f in files if f not in ("metadata.json", "manifest.json")]
    assert "model.tflite" in files and "golden/face_001.embedding.f32" in files and "report.md" in files
    for entry in manifest["files"]:
        data = (sealed / entry["path"]).read_bytes()
        assert entry == {"path": entry["path"], "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert bundle.verify_bundle(sealed)["tolerance"] == seal.GOLDEN_TOLERANCES["int8"]


def _flip_embedding_bit(d):
    path = d / "golden" / "face_001.embedding.f32"
    raw = bytearray(path.read_bytes())
    raw[5] ^= 0x01
    path.write_bytes(bytes(raw))


def _append_to_png(d):
    with open(d / "golden" / "face_000.png", "ab") as f:
        f.write(b"appended")


@pytest.mark.parametrize("tamper, message", [
    (_flip_embedding_bit, r"golden/face_001.embedding.f32: 64 bytes with SHA-256 \w+ does not match .*manifest.json"),
    (_append_to_png, r"golden/face_000.png: \d+ bytes with SHA-256 .* does not match"),
    (lambda d: (d / "golden" / "extra.png").write_bytes(b"x"), r"golden/extra.png: not listed in .*manifest.json"),
    (lambda d: (d / "report.md").unlink(), r"report.md: listed in .*manifest.json but missing"),
    (lambda d: (d / "manifest.json").write_text("{}"), r"manifest.json: SHA-256 \w+ does not match \w+ in .*metadata.json"),
    (lambda d: _edit_json(d / "metadata.json", lambda m: m.pop("bundle")), r"metadata.json: missing field 'bundle'"),
    (lambda d: _edit_json(d / "metadata.json", lambda m: m["model"].update(sha256="0" * 64)),
     r"model.tflite: SHA-256 \w+ in .*manifest.json does not match model.sha256 0{64}"),
])
def test_tampered_bundles_are_refused(sealed, tmp_path, tamper, message):
    target = _copy(sealed, tmp_path)
    tamper(target)
    with pytest.raises(bundle.BundleError, match=message):
        bundle.verify_bundle(target)


def test_changed_embedding_fails_even_when_resealed_and_loosened(sealed, tmp_path):
    # Before the seal: a changed embedding + a loosened golden.json tolerance passed at cosine -0.003.
    target = _copy(sealed, tmp_path)
    path = target / "golden" / "face_000.embedding.f32"
    path.write_bytes((-np.frombuffer(path.read_bytes(), "<f4")).astype("<f4").tobytes())
    _edit_json(target / "golden" / "golden.json",
               lambda g: g.update(tolerance={"min_cosine": -1.0, "max_abs_error_relative": 10.0}))
    reseal(target)
    with pytest.raises(bundle.BundleError, match=r"golden.json: tolerance .* is looser than the fixed table"):
        bundle.verify_bundle(target)
    # The table's tolerance is the one used: a stricter golden.json changes nothing, the changed
    # embedding still fails against LiteRT's output.
    _edit_json(target / "golden" / "golden.json",
               lambda g: g.update(tolerance={"min_cosine": 0.9999999, "max_abs_error_relative": 0.0}))
    reseal(target)
    with pytest.raises(bundle.BundleError, match=r"face_000.embedding.f32: LiteRT gives cosine -1.0000.*cosine >= 0.995"):
        bundle.verify_bundle(target)


def test_symlinks_and_special_files_are_refused(sealed, tmp_path):
    target = _copy(sealed, tmp_path, "zero")
    (target / "metadata.json").unlink()
    (target / "metadata.json").symlink_to("/dev/zero")
    with pytest.raises(bundle.BundleError, match=r"metadata.json: bundle JSON file is a symbolic link"):
        bundle.verify_bundle(target)
    target = _copy(sealed, tmp_path, "linked_png")
    png = target / "golden" / "face_000.png"
    png.rename(target / "elsewhere.png")
    png.symlink_to(target / "elsewhere.png")
    with pytest.raises(bundle.BundleError, match=r"golden/face_000.png: symbolic links are not allowed"):
        bundle.verify_bundle(target)


@pytest.mark.parametrize("text, message", [
    ("not json", r"metadata.json: not valid JSON"),
    ("[]", r"metadata.json: expected a JSON object, got list"),
    ('{"schema": 5}', r"metadata.json: field 'schema' has the wrong type"),
    ('{"schema": "pocketnet_tf.tflite_metadata/1"}', r"metadata.json: missing field 'model'"),
    ("[" * 10000 + "]" * 10000, r"metadata.json: not valid JSON \(nesting deeper than 32"),
    (" " * (seal.MAX_JSON_BYTES + 1), r"metadata.json: bundle JSON file is 1048577 bytes; at most 1048576"),
])
def test_malformed_metadata_gives_bundle_error(sealed, tmp_path, text, message):
    target = _copy(sealed, tmp_path)
    (target / "metadata.json").write_text(text)
    with pytest.raises(bundle.BundleError, match=message):
        bundle.verify_bundle(target)


@pytest.mark.parametrize("edit, message", [
    (lambda g: g.update(cases="x"), r"golden.json: no test cases"),
    (lambda g: g.update(cases=[5]), r"golden.json: cases\[0\].image must name a file"),
    (lambda g: g["cases"][0].update(image="../model.tflite"), r"cases\[0\].image must name a file"),
    (lambda g: g.update(tolerance=None), r"golden.json: 'tolerance' must be an object"),
    (lambda g: g["tolerance"].update(min_cosine="0.9"), r"must be numbers"),
    (lambda g: g.update(input_shape=[1, 2 ** 40, 3, 3]), r"golden.json: input_shape must be \[1, 32, 32, 3\]"),
    (lambda g: g.update(embedding_size=10 ** 12), r"golden.json: embedding_size must be 16"),
])
def test_malformed_golden_index_gives_bundle_error(sealed, tmp_path, edit, message):
    target = _copy(sealed, tmp_path)
    _edit_json(target / "golden" / "golden.json", edit)
    meta = json.loads((target / "metadata.json").read_text())
    meta["bundle"] = seal.write_manifest(target)
    (target / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(bundle.BundleError, match=message):
        bundle.verify_bundle(target)


@pytest.mark.parametrize("entry, message", [
    ({"path": "../x", "bytes": 1, "sha256": "0" * 64}, r"files\[0\].path '../x' is not a relative path"),
    ({"path": "/etc/passwd", "bytes": 1, "sha256": "0" * 64}, r"is not a relative path"),
    ({"path": "golden\\x.png", "bytes": 1, "sha256": "0" * 64}, r"is not a relative path"),
    ({"path": "model.tflite", "bytes": -1, "sha256": "0" * 64}, r"needs a byte count"),
    ({"path": "model.tflite", "bytes": 1, "sha256": "0" * 64, "more": 1}, r"files\[0\] must be"),
])
def test_manifest_entries_are_checked(sealed, tmp_path, entry, message):
    target = _copy(sealed, tmp_path)
    text = json.dumps({"schema": seal.MANIFEST_SCHEMA, "files": [entry]}).encode()
    (target / "manifest.json").write_bytes(text)
    _edit_json(target / "metadata.json", lambda m: m["bundle"].update(manifest_sha256=hashlib.sha256(text).hexdigest()))
    with pytest.raises(bundle.BundleError, match=message):
        bundle.verify_bundle(target)


@pytest.mark.slow
def test_verify_bundle_cli_exit_codes(sealed, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

    def run(directory):
        return subprocess.run([sys.executable, "-m", "pocketnet_tf.verify_bundle", str(directory)],
                              capture_output=True, text=True, env=env, timeout=300)

    ok = run(sealed)
    assert ok.returncode == 0 and "verify_bundle: OK (2 golden vectors" in ok.stdout, ok.stderr[-2000:]
    target = _copy(sealed, tmp_path)
    (target / "metadata.json").write_text('{"schema": "pocketnet_tf.tflite_metadata/1", "model": []}')
    bad = run(target)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        f"verify_bundle: FAILED: {target / 'metadata.json'}: field 'model' has the wrong type or value (list)")
    assert "Traceback" not in bad.stderr


def test_files_kept_in_out_are_sealed_and_failed_reports_ignored(sealed, tmp_path):
    target = _copy(sealed, tmp_path)
    (target / "notes.txt").write_text("kept by the user")
    (target / "failed_report.json").write_text("{}")  # as a later failed conversion leaves it
    root = sealed.parent
    run_export(ExportConfig(model=str(root / "plain.keras"), mode="fp32", out=str(target), num_validation=4,
                            representative=str(root / "data"), golden_count=1))
    manifest = json.loads((target / "manifest.json").read_text())
    assert "notes.txt" in [f["path"] for f in manifest["files"]]
    assert not (target / "failed_report.json").exists()
    assert bundle.verify_bundle(target)["tolerance"] == seal.GOLDEN_TOLERANCES["fp32"]
    (target / "failed_report.md").write_text("a later failure")
    assert bundle.verify_bundle(target)["passed"]


def test_a_bundle_directory_reached_through_a_link_is_verified(sealed, tmp_path):
    # Only the files inside are refused as links (convert --out may be a link to a directory).
    link = tmp_path / "current"
    link.symlink_to(sealed, target_is_directory=True)
    assert bundle.verify_bundle(link)["passed"]
