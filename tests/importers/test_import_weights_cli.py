"""``python -m pocketnet_tf.import_weights`` in a subprocess, as a user runs it."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from tests.factory import random_images
from tests.importers.common import ATOL, max_abs_diff


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _error_message(stderr: str) -> str:
    """The CLI's own message (TensorFlow may log to stderr before it)."""
    assert "error: " in stderr, stderr
    return stderr[stderr.index("error: ") :]


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "pocketnet_tf.import_weights", *args],
        capture_output=True, text=True, timeout=600,
    )


@pytest.mark.slow
def test_cli_imports_checks_and_refuses(tmp_path):
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the torch test extra")
    import keras

    import pocketnet_tf.models  # noqa: F401  (registers the classes the .keras file names)
    from tests import torch_reference as ref

    # A searched genotype given as a JSON file, with a non-default embedding size.
    genotype_file = tmp_path / "genotype.json"
    from pocketnet_tf import genotypes

    genotype_file.write_text(json.dumps(genotypes.resolve("softmax_cifar10").to_dict()))
    module = ref.randomize_(ref.AugmentCNN(genotype="softmax_cifar10", embedding_size=64), seed=21)
    checkpoint = tmp_path / "backbone.pth"
    # Wrapped and DDP-prefixed, as some training scripts save it.
    torch.save({"state_dict": {f"module.{k}": v for k, v in module.state_dict().items()}, "epoch": 25}, checkpoint)
    out = tmp_path / "out" / "s64.keras"

    proc = _run("--model=PocketNetS-128", f"--pytorch={checkpoint}", f"--out={out}",
                "--embedding_size=64", f"--genotype={genotype_file}")
    assert proc.returncode == 0, proc.stderr
    counters = sum(k.endswith("num_batches_tracked") for k in module.state_dict())
    assert counters > 100
    assert f"imported {len(module.state_dict()) - counters} tensors" in proc.stdout
    assert f"{counters} num_batches_tracked counters dropped" in proc.stdout

    model = keras.saving.load_model(out)
    assert model.get_config()["genotype"] == genotypes.resolve("softmax_cifar10").to_dict()
    images = random_images(2, seed=22)
    expected = ref.embed(module, images)
    got = np.asarray(model(images, training=False))
    assert got.shape == (2, 64)
    assert 0.1 < float(np.std(expected)) < 100.0
    assert max_abs_diff(got, expected) <= ATOL

    # Wrong embedding size: one message listing every mis-shaped tensor, non-zero exit, no file.
    bad_out = tmp_path / "bad.keras"
    proc = _run("--model=PocketNetS-128", f"--pytorch={checkpoint}", f"--out={bad_out}", f"--genotype={genotype_file}")
    assert proc.returncode == 2
    error = _error_message(proc.stderr)
    assert error.startswith(f"error: {checkpoint}: checkpoint does not match PocketNet(")
    assert ": 5 wrong shape\n" in error
    assert "tail.6.weight  expected [128, 512, 1, 1], found [64, 512, 1, 1]" in error
    assert error.endswith("(--embedding_size=64)\n")
    assert not bad_out.exists()

    # A pickle that would run a command is refused without running it.
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2))
    proc = _run("--model=PocketNetS-128", f"--pytorch={evil}", f"--out={bad_out}")
    assert proc.returncode == 2
    error = _error_message(proc.stderr)
    assert error.startswith(f"error: {evil}: refused to load") and "posix.system" in error
    assert not marker.exists() and not bad_out.exists()
