"""pocketnet_tf.cli: the one dash->underscore normaliser every command parses its flags with."""

import json

import pytest
from absl import flags

from pocketnet_tf import cli
from pocketnet_tf.data import synthetic
from tests.cli_support import ENV, REPO, run_module


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


# Imports every module of the package (entry points and __main__ modules included), then reports
# which flags exist: those of pocketnet_tf modules, and which of every stage's flag names.
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
from absl import flags
import pocketnet_tf
names = sorted(m.name for m in pkgutil.walk_packages(pocketnet_tf.__path__, "pocketnet_tf."))
for name in names:
    importlib.import_module(name)
ours = set(json.loads(sys.argv[1]))
print(json.dumps({
    "modules": names,
    "defined_by_package": sorted(m for m in flags.FLAGS.flags_by_module_dict() if m.startswith("pocketnet_tf")
                                 or m == "__main__"),
    "project_flags_defined": sorted(n for n in ours if n in flags.FLAGS),
}))
"""


def _every_stage_flag_name() -> set:
    """The flag names of every command, each defined on its own fresh ``FlagValues``."""
    from pocketnet_tf import benchmark
    from pocketnet_tf.data import flags as data_flags
    from pocketnet_tf.eval import flags as eval_flags
    from pocketnet_tf.export import flags as export_flags
    from pocketnet_tf.face import flags as face_flags
    from pocketnet_tf.importers import flags as importer_flags
    from pocketnet_tf.models import flags as model_flags
    from pocketnet_tf.search import flags as search_flags
    from pocketnet_tf.train import flags as train_flags
    from pocketnet_tf.web_demo import flags as web_flags

    names = set()
    for define in (train_flags.define_flags, search_flags.define_flags, data_flags.define_flags,
                   eval_flags.define_flags, export_flags.define_flags, export_flags.define_verify_flags,
                   importer_flags.define_flags, model_flags.define_flags, face_flags.define_flags,
                   web_flags.define_flags, benchmark.define_flags):
        values = flags.FlagValues()
        define(values)
        names |= set(values)
    return names


def test_importing_any_module_defines_no_flags():
    """Flags are defined only when a command runs (``define_flags(flag_values)`` from its entry):
    importing every module of the package, entry points included, leaves ``absl.flags.FLAGS``
    without a single project flag."""
    import subprocess
    import sys

    ours = _every_stage_flag_name()
    assert {"workdir", "alpha_lr", "src", "decode", "mode", "ijb_set", "pytorch", "in", "port", "kd_flagfile",
            "threads", "num_threads"} <= ours and len(ours) > 120
    proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL, json.dumps(sorted(ours))], capture_output=True,
                          text=True, timeout=600, cwd=REPO, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    entries = {"pocketnet_tf.train.__main__", "pocketnet_tf.search.__main__", "pocketnet_tf.data.__main__",
               "pocketnet_tf.models.__main__", "pocketnet_tf.face.__main__", "pocketnet_tf.web_demo.__main__",
               "pocketnet_tf.convert", "pocketnet_tf.evaluate", "pocketnet_tf.verify_bundle",
               "pocketnet_tf.import_weights", "pocketnet_tf.align", "pocketnet_tf.benchmark"}
    assert entries <= set(report["modules"]) and len(report["modules"]) > 100
    assert report["defined_by_package"] == []
    assert report["project_flags_defined"] == []
