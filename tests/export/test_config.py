"""convert's and verify_bundle's flags -> frozen ExportConfig / VerifyConfig."""

import dataclasses

import pytest

from pocketnet_tf.export.config import ExportConfig, VerifyConfig
from pocketnet_tf.export.flags import define_flags, define_verify_flags
from tests.cli_support import parsed_flags


def _parsed(*args):
    return parsed_flags(define_flags, *args, command="convert")


def test_flags_become_a_frozen_export_config(tmp_path):
    model, data = tmp_path / "m.keras", tmp_path / "data"
    model.write_bytes(b"x")
    data.mkdir()
    config = ExportConfig.from_flags(_parsed(f"--model={model}", "--mode=int8", "--out=o", f"--representative={data}",
                                             "--raw-input", "--num-calibration=5", "--min_cosine=0.9", "--far=0.01"))
    assert config == ExportConfig(model=str(model), mode="int8", out="o", representative=str(data), raw_input=True,
                                  num_calibration=5, min_cosine=0.9, far=0.01)
    assert config.bin == () and config.resolved_prelu_rewrite == "fold" and config.thresholds().min_cosine == 0.9
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mode = "fp32"
    # Every field is a flag of the same name and every flag a field.
    assert {f.name for f in dataclasses.fields(ExportConfig)} == set(_parsed())


@pytest.mark.parametrize("args, error, message", [
    (["--mode=fp32"], ValueError, "--model and --out are required"),
    (["--model=MODEL", "--mode=fp32"], ValueError, "--model and --out are required"),
    (["--model=MODEL", "--mode=int8", "--out=o", "--bin=BIN"], ValueError, "mode int8 needs --representative"),
    (["--model=MODEL", "--out=o"], ValueError, "validation needs held-out images"),
    (["--model=missing.keras", "--out=o", "--bin=BIN"], FileNotFoundError, "missing.keras: model not found"),
    (["--model=MODEL", "--out=o", "--bin=BIN", "--far=1.5"], ValueError, r"far must be in \(0, 1\)"),
])
def test_bad_convert_flags_are_named(tmp_path, args, error, message):
    (tmp_path / "m.keras").write_bytes(b"x")
    (tmp_path / "v.bin").write_bytes(b"x")
    args = [a.replace("MODEL", str(tmp_path / "m.keras")).replace("BIN", str(tmp_path / "v.bin")) for a in args]
    with pytest.raises(error, match=message):
        ExportConfig.from_flags(_parsed(*args))


def test_verify_flags_become_a_frozen_config():
    flag_values = parsed_flags(define_verify_flags, "bundle", "--num-threads=3", "--json", command="verify_bundle")
    assert set(flag_values) == {"num_threads", "json"}
    assert VerifyConfig.from_flags("bundle", flag_values) == VerifyConfig(bundle="bundle", num_threads=3, json=True)
    with pytest.raises(ValueError, match="usage: python -m pocketnet_tf.verify_bundle DIR"):
        VerifyConfig.from_flags("", flag_values)
