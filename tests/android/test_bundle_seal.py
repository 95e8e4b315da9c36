"""The same seal checked by Java (VerificationBundle/GoldenSet) and Python (verify_bundle, the face
pipeline) on real converter bundles: every tampering is refused by all three."""

import json
import shutil

import pytest

from pocketnet_tf.export import bundle, seal
from pocketnet_tf.face.pipeline import read_bundle_metadata
from tests.android import jvm
from tests.export.test_seal import _append_to_png, _flip_embedding_bit, reseal


def _metadata_to_dev_zero(d):
    (d / "metadata.json").unlink()
    (d / "metadata.json").symlink_to("/dev/zero")


def _loosen_tolerance_and_reseal(d):
    path = d / "golden" / "golden.json"
    golden = json.loads(path.read_text())
    golden["tolerance"] = {"min_cosine": -1.0, "max_abs_error_relative": 100.0}
    path.write_text(json.dumps(golden))
    reseal(d)


def _extra_file(d):
    (d / "golden" / "face_009.png").write_bytes((d / "golden" / "face_000.png").read_bytes())


CASES = {
    # name: (tamper, fragment in Java's message, fragment in Python's message)
    "flipped_embedding": (_flip_embedding_bit, "face_001.embedding.f32: SHA-256", "face_001.embedding.f32: "),
    "appended_png": (_append_to_png, "face_000.png: SHA-256", "face_000.png: "),
    "dev_zero": (_metadata_to_dev_zero, "metadata.json: symbolic links are not allowed",
                 "metadata.json: bundle JSON file is a symbolic link"),
    "loosened": (_loosen_tolerance_and_reseal, "looser than the fixed int8 tolerance", "is looser than the fixed table"),
    "extra": (_extra_file, "face_009.png: not listed in", "face_009.png: not listed in"),
    "truncated_manifest": (lambda d: (d / "manifest.json").write_bytes(b"{"), "manifest.json: SHA-256",
                           "manifest.json: SHA-256"),
}


def test_java_and_python_refuse_the_same_tampering(java_core, real_bundles, tmp_path):
    good = real_bundles[("int8", False)]
    for name, (tamper, _, _) in CASES.items():
        shutil.copytree(good, tmp_path / name)
        tamper(tmp_path / name)
    jvm.run_tool(java_core, tmp_path / "job.json", {"tasks": [
        {"op": "bundle_open", "bundle": str(good), "out": "good.json"},
        *({"op": "bundle_open", "bundle": str(tmp_path / name), "out": f"{name}.json"} for name in CASES),
    ]})
    assert json.loads((tmp_path / "good.json").read_text())["ok"] is True
    assert bundle.verify_bundle(good)["passed"]
    for name, (_, java_fragment, python_fragment) in CASES.items():
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert not result["ok"] and java_fragment in result["error"], (name, result)
        with pytest.raises(seal.BundleError, match=python_fragment):
            bundle.verify_bundle(tmp_path / name)
        if name != "loosened":  # the face pipeline, like the app, reads golden.json only when asked
            with pytest.raises(seal.BundleError, match=python_fragment):
                read_bundle_metadata(tmp_path / name)
