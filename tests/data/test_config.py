"""The data command's flags -> frozen DataConfig (python -m pocketnet_tf.data synth|convert|info)."""

import dataclasses

import pytest
from absl import flags

from pocketnet_tf import cli
from pocketnet_tf.data.config import DataConfig
from pocketnet_tf.data.flags import define_benchmark_flags, define_flags
from pocketnet_tf.data.synthetic import SynthConfig


def _config(command, *args):
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    cli.parse_flags(["data", command, *args], flag_values)
    return DataConfig.from_flags(command, flag_values)


def test_flags_become_a_frozen_config_and_synth_its_generator_config():
    config = _config("synth", "--out=d", "--identities=3", "--images-per-identity=4", "--seed=7", "--size=32",
                     "--val-identities=2", "--val_pairs=0", "--nuisance=1.5")
    assert config == DataConfig(command="synth", out="d", identities=3, images_per_identity=4, seed=7, size=32,
                                val_identities=2, val_pairs=0, nuisance=1.5)
    assert config.synth_config() == SynthConfig(out="d", identities=3, images_per_identity=4, seed=7, size=32,
                                                val_identities=2, val_pairs=0, nuisance=1.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.out = "e"
    assert _config("info", "--src=s", "--no-decode").decode is False
    assert _config("convert", "--src=s", "--out=o", "--shards=3").shards == 3
    # Every field but the subcommand is a flag of the same name.
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    assert {f.name for f in dataclasses.fields(DataConfig)} - {"command"} == set(flag_values)


@pytest.mark.parametrize("command, args, message", [
    ("synth", [], "synth needs --out"),
    ("convert", ["--out=o"], "convert needs --src"),
    ("convert", ["--src=s"], "convert needs --out"),
    ("info", ["--decode"], "info needs --src"),
    ("frobnicate", ["--src=s"], "unknown command 'frobnicate'"),
    ("synth", ["--out=d", "--val_identities=2", "--val_pairs=10", "--identities=2", "--size=2000"], None),
])
def test_missing_or_bad_flags_are_named(command, args, message):
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    if message is None:  # absl's own bound (--size <= 1024) stops it before the config
        with pytest.raises(flags.IllegalFlagValueError, match="size"):
            cli.parse_flags(["data", command, *args], flag_values)
        return
    cli.parse_flags(["data", command, *args], flag_values)
    with pytest.raises(ValueError, match=message):
        DataConfig.from_flags(command, flag_values)


def test_synth_ranges_are_checked_when_the_config_is_built():
    """The generator's own checks run before any file is written."""
    with pytest.raises(ValueError, match="val_identities must be >= 2"):
        DataConfig(command="synth", out="d", val_identities=1, val_pairs=4)


def test_benchmark_input_flags_are_the_data_stage_s():
    flag_values = flags.FlagValues()
    define_benchmark_flags(flag_values)
    assert set(flag_values) == {"data", "threads"}
    cli.parse_flags(["benchmark", "--data=d", "--threads=2"], flag_values)
    assert (flag_values.data, flag_values.threads) == ("d", 2)
