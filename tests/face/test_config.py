"""The face command's flags -> frozen FaceConfig (python -m pocketnet_tf.align / pocketnet_tf.face)."""

import dataclasses

import pytest
from absl import flags

from pocketnet_tf import cli
from pocketnet_tf.face.config import FaceConfig
from pocketnet_tf.face.flags import define_flags


def _config(command, *args):
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    cli.parse_flags(["align", *args], flag_values)
    return FaceConfig.from_flags(command, flag_values)


def test_flags_become_a_frozen_config():
    config = _config("enrol", "--in=a.jpg,dir", "--bundle=b", "--gallery=g.json", "--name=Ada", "--min-score=0.7",
                     "--no-all-faces", "--num_threads=2")
    assert config == FaceConfig(command="enrol", inputs=("a.jpg", "dir"), out=None, bundle="b", gallery="g.json",
                                name="Ada", min_score=0.7, all_faces=False, num_threads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "Bob"
    # Every field but the command and --in (a Python keyword) is a flag of the same name.
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    assert {f.name for f in dataclasses.fields(FaceConfig)} - {"command", "inputs"} | {"in"} == set(flag_values)


@pytest.mark.parametrize("command, args, message", [
    ("align", [], "--in is required"),
    ("align", ["--in=a.jpg"], "align needs --out"),
    ("match", ["--in=a.jpg", "--bundle=b"], "match needs --bundle and --gallery"),
    ("enrol", ["--in=a.jpg", "--bundle=b", "--gallery=g"], "enrol needs --name"),
    ("frobnicate", ["--in=a.jpg"], "unknown command 'frobnicate'"),
])
def test_missing_flags_are_named(command, args, message):
    with pytest.raises(ValueError, match=message):
        _config(command, *args)
