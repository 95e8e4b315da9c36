"""evaluate's flags -> frozen EvalConfig."""

import dataclasses

import pytest

from pocketnet_tf.eval.config import EvalConfig
from pocketnet_tf.eval.flags import define_flags
from tests.cli_support import parsed_flags


def _parsed(*args):
    return parsed_flags(define_flags, *args, command="evaluate")


def test_flags_become_a_frozen_eval_config(tmp_path):
    lfw, agedb = tmp_path / "lfw.bin", tmp_path / "agedb_30.bin"
    lfw.write_bytes(b"x")
    agedb.write_bytes(b"x")
    config = EvalConfig.from_flags(_parsed("--model=m.keras", f"--bin={lfw},{agedb}", "--out=o", "--no-flip",
                                           "--batch-size=8", "--n_folds=5"))
    assert config == EvalConfig(model="m.keras", out="o", bin=(str(lfw), str(agedb)), flip=False, batch_size=8,
                                n_folds=5, num_threads=None)
    # --num_threads=0 (the flag's default) is the runtime's default thread count.
    assert EvalConfig.from_flags(_parsed("--model=m", f"--bin={lfw}", "--out=o", "--num-threads=3")).num_threads == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.flip = True
    assert {f.name for f in dataclasses.fields(EvalConfig)} == set(_parsed())


@pytest.mark.parametrize("args, message", [
    (["--out=o", "--bin=x.bin"], "--model is required"),
    (["--model=m", "--bin=x.bin"], "--out is required"),
    (["--model=m", "--out=o"], "nothing to evaluate"),
    (["--model=m", "--out=o", "--megaface_algo=a", "--megaface_facescrub_images=d"], "MegaFace export needs all of"),
])
def test_missing_flags_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        EvalConfig.from_flags(_parsed(*args))
