"""pocketnet_tf.cli: the one dash->underscore normaliser every command parses its flags with."""

import json

import pytest
from absl import flags

from pocketnet_tf import cli
from pocketnet_tf.data import synthetic
from tests.cli_support import run_module


@pytest.fixture()
def flag_values():
    fv = flags.FlagValues()
    flags.DEFINE_integer("images_per_identity", 20, "", flag_values=fv)
    flags.DEFINE_boolean("decode", False, "", flag_values=fv)
    flags.DEFINE_boolean("no_flip", False, "a flag whose own name starts with no_", flag_values=fv)
    flags.DEFINE_string("out", None, "", flag_values=fv)
    return fv


def test_dashes_become_the_defined_names(flag_values):
    argv = ["prog", "info", "--images-per-identity=3", "--no-decode", "--no-flip", "--out=a-b", "--unknown-flag",
            "--", "--images-per-identity=9"]
    assert cli.normalize_dashes(argv, flag_values) == [
        "prog", "info", "--images_per_identity=3", "--nodecode", "--no_flip", "--out=a-b", "--unknown-flag",
        "--", "--images-per-identity=9"]
    # Underscored and already-correct spellings are left alone; a plain flag name set works too.
    assert cli.normalize_dashes(["p", "--decode", "--nodecode", "--images_per_identity", "4"], {"decode"}) == [
        "p", "--decode", "--nodecode", "--images_per_identity", "4"]


def test_parse_flags_sets_values_and_keeps_unknown_names_for_the_error(flag_values):
    rest = cli.parse_flags(["prog", "info", "--images-per-identity=3", "--no-decode", "--decode"], flag_values)
    assert rest == ["prog", "info"]
    assert flag_values.images_per_identity == 3 and flag_values.decode is True
    cli.parse_flags(["prog", "--no-decode"], flag_values)
    assert flag_values.decode is False
    with pytest.raises(flags.UnrecognizedFlagError, match="unknown-flag"):
        cli.parse_flags(["prog", "--unknown-flag=1"], flag_values)


@pytest.mark.slow
def test_data_info_no_decode_and_align_dashes(tmp_path):
    """The issue's failing command line, as a user runs it."""
    synthetic.generate(synthetic.SynthConfig(out=str(tmp_path), identities=2, images_per_identity=2, size=32,
                                             val_identities=2, val_pairs=0))
    proc = run_module("pocketnet_tf.data", ["info", f"--src={tmp_path}", "--no-decode"], timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_images"] == 4
    # The face command takes the same spellings (--min-score, --no-all-faces) before its own checks.
    proc = run_module("pocketnet_tf.align", ["--min-score=0.7", "--no-all-faces"], timeout=300)
    assert proc.returncode == 1 and "--in is required" in proc.stderr, proc.stderr


def test_importing_a_command_module_defines_no_flags():
    """Flags are defined only when a command runs (``define_flags(flag_values)`` from its entry)."""
    import subprocess
    import sys

    code = ("import pocketnet_tf.align, pocketnet_tf.import_weights, pocketnet_tf.models.__main__, "
            "pocketnet_tf.face.__main__, pocketnet_tf.convert, pocketnet_tf.evaluate, pocketnet_tf.verify_bundle\n"
            "from absl import flags\n"
            "print(sorted(n for n in ('in', 'pytorch', 'genotype', 'json', 'mode', 'bin', 'num_threads', 'min_score') "
            "if n in flags.FLAGS))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
