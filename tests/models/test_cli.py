"""``python -m pocketnet_tf.models`` through a real subprocess, as a user runs it."""

import json
import subprocess
import sys

import pytest


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pocketnet_tf.models", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_summary_json_and_list():
    proc = _run("summary", "PocketNetM-256", "--json")
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["trainable_params"] == 1_752_448
    assert s["mflops"] == 1099.1557
    assert s["macs"] == 538_281_216
    assert s["embedding_size"] == 256
    listing = _run("list")
    assert listing.returncode == 0
    assert "PocketNetS-128" in listing.stdout and "iresnet100" in listing.stdout
    bad = _run("summary", "NoSuchNet")
    assert bad.returncode == 2 and "unknown model 'NoSuchNet'" in bad.stderr
