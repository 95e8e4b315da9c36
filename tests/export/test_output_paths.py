"""Output paths of convert, evaluate and import_weights (issue #12): a file in the way or a
read-only directory gives exit 2 and one line naming the path before any work; ``convert --out``
that is a symlink is written through (the link stays); kill -9 during the bundle install loses
nothing (the earlier bundle is moved back by the next convert)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.cli_support import ENV, REPO, run_module
from tests import factory
from tests.fault_injection import remount_read_only, tmpfs

# convert, with os.replace patched to SIGKILL right after the earlier bundle was moved aside.
_KILLED_INSTALL = """
import os, runpy, signal, sys
original = os.replace
def replace(src, dst, *a, **k):
    original(src, dst, *a, **k)
    if str(dst).endswith(".old"):
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.argv = ["pocketnet_tf.convert", *sys.argv[1:]]
from pocketnet_tf import convert
convert.run()
"""


def last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    factory.tiny_plain(seed=4).save(root / "plain.keras")
    factory.synthetic_faces(root / "data")
    return root


def convert_args(root, out):
    return [f"--model={root / 'plain.keras'}", "--mode=fp32", f"--out={out}", f"--validation_data={root / 'data'}",
            "--num_validation=4", "--golden_count=1"]


@pytest.mark.slow
def test_convert_out_symlink_written_through_and_kill_during_install(plain_model, tmp_path):
    real = tmp_path / "exports" / "s128"
    real.mkdir(parents=True)
    (real / "notes.txt").write_text("kept")
    link = tmp_path / "bundle"
    link.symlink_to(real, target_is_directory=True)
    proc = run_module("pocketnet_tf.convert", convert_args(plain_model, link), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert {"model.tflite", "metadata.json", "notes.txt"} <= {p.name for p in real.iterdir()}
    meta = json.loads((real / "metadata.json").read_text())

    # SIGKILL between "earlier bundle moved aside" and "new bundle moved in".
    proc = subprocess.run([sys.executable, "-c", _KILLED_INSTALL, *convert_args(plain_model, link)], cwd=REPO,
                          env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not real.exists() and (real.parent / ".s128.old" / "metadata.json").is_file()

    from pocketnet_tf.export.exporter import _remove_stale_install  # what the next convert does first

    _remove_stale_install(link)
    assert sorted(p.name for p in real.parent.iterdir()) == ["s128"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.")]
    assert json.loads((real / "metadata.json").read_text()) == meta and (real / "notes.txt").read_text() == "kept"


@pytest.mark.slow
def test_unwritable_outputs_exit_2_before_any_work(plain_model, tmp_path):
    (tmp_path / "afile").write_text("precious")
    proc = run_module("pocketnet_tf.convert", convert_args(plain_model, tmp_path / "afile"), timeout=600)
    assert proc.returncode == 2
    assert last_line(proc) == f"convert: error: cannot write {tmp_path / 'afile'}: exists and is not a directory"

    from tests.eval.synthetic_sets import write_toy_bin

    bin_path = write_toy_bin(tmp_path / "lfw.bin")
    (tmp_path / "pth").write_bytes(b"not read: the output is checked first")
    evaluate = ["pocketnet_tf.evaluate", f"--model={plain_model / 'plain.keras'}", f"--bin={bin_path}"]
    with tmpfs(tmp_path / "ro", 256) as mount:
        (mount / "out").mkdir()
        remount_read_only(mount)
        read_only = f"cannot write {mount / 'out'}: Read-only file system"
        cases = [
            (["pocketnet_tf.convert", *convert_args(plain_model, mount / "out" / "b")], f"convert: error: {read_only}"),
            ([*evaluate, f"--out={mount / 'out'}"], f"evaluate: error: {read_only}"),
            (["pocketnet_tf.import_weights", "--model=PocketNetS-128", f"--pytorch={tmp_path / 'pth'}",
              f"--out={mount / 'out' / 'm.keras'}"], f"error: {read_only}"),
        ]
        for (module, *args), expected in cases:
            proc = run_module(module, args, timeout=600)
            assert (proc.returncode, last_line(proc)) == (2, expected), proc.stderr[-2000:]
    proc = run_module(evaluate[0], [*evaluate[1:], f"--out={tmp_path / 'afile'}"], timeout=600)
    assert proc.returncode == 2
    assert last_line(proc) == f"evaluate: error: cannot write {tmp_path / 'afile'}: exists and is not a directory"
    assert (tmp_path / "afile").read_text() == "precious"
