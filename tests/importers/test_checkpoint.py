"""``import_checkpoint``: the library call behind ``python -m pocketnet_tf.import_weights``."""

import numpy as np
import pytest

from pocketnet_tf.importers.checkpoint import ImportConfig, import_checkpoint
from pocketnet_tf.importers.torch_checkpoint import StateDictMismatchError
from tests.factory import random_images
from tests.importers.common import ATOL, max_abs_diff


@pytest.fixture(scope="module")
def s128_checkpoint(tmp_path_factory):
    """A full-size PocketNetS-128 reference with random weights and statistics, saved by torch."""
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the torch test extra")
    from tests import torch_reference as ref

    module = ref.randomize_(ref.AugmentCNN(), seed=1)
    path = tmp_path_factory.mktemp("s128") / "295672backbone.pth"
    torch.save(module.state_dict(), path)
    return module, path


def test_pocketnet_s128_full_size_matches_torch(s128_checkpoint, tmp_path):
    from tests import torch_reference as ref

    module, checkpoint = s128_checkpoint
    out = tmp_path / "models" / "s128.keras"
    model, report = import_checkpoint(ImportConfig("PocketNetS-128", str(checkpoint), str(out)))
    assert (report.assigned, report.dropped, report.parameters) == (1112, 163, 925_632 + 15_232)
    images = random_images(2, seed=0)
    expected = ref.embed(module, images)
    got = np.asarray(model(images, training=False))
    assert got.shape == (2, 128)
    assert 0.1 < float(np.std(expected)) < 100.0  # O(1): the absolute tolerance has teeth
    assert max_abs_diff(got, expected) <= ATOL
    assert sorted(p.name for p in out.parent.iterdir()) == ["s128.keras"]  # no temporaries left


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    """A tiny reference checkpoint; ``import_checkpoint`` builds the matching tiny PocketNet."""
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the torch test extra")
    from pocketnet_tf.importers import checkpoint
    from pocketnet_tf.models.pocketnet import PocketNet
    from tests import torch_reference as ref

    tiny = dict(channels=4, num_cells=5, embedding_size=16, head_width=32, input_size=32)
    module = ref.randomize_(ref.AugmentCNN(**tiny), seed=12)
    monkeypatch.setattr(checkpoint, "build_model", lambda config: PocketNet(**tiny))
    path = tmp_path / "tiny.pth"
    torch.save(module.state_dict(), path)
    return torch, module, path


def test_a_mismatched_checkpoint_writes_nothing(tiny_checkpoint, tmp_path):
    torch, module, _ = tiny_checkpoint
    state = module.state_dict()
    del state["cells.4.dag.3.1.bn.running_var"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    out = tmp_path / "model.keras"
    out.write_bytes(b"previous model")
    with pytest.raises(StateDictMismatchError, match=r"bad\.pth: .*1 missing\n  missing +cells\.4\.dag\.3\.1\.bn\.running_var  expected \[32\]$"):
        import_checkpoint(ImportConfig("PocketNetS-128", str(bad), str(out)))
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "model.keras", "tiny.pth"]


def test_a_save_that_fails_midway_keeps_the_previous_file(tiny_checkpoint, tmp_path, monkeypatch):
    import keras

    _, _, checkpoint = tiny_checkpoint
    out = tmp_path / "model.keras"
    out.write_bytes(b"previous model")

    def broken_save(self, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        import_checkpoint(ImportConfig("PocketNetS-128", str(checkpoint), str(out)))
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras", "tiny.pth"]


def test_tiny_import_round_trips_through_the_keras_file(tiny_checkpoint, tmp_path):
    import keras

    from tests import torch_reference as ref

    _, module, checkpoint = tiny_checkpoint
    out = tmp_path / "model.keras"
    model, _ = import_checkpoint(ImportConfig("PocketNetS-128", str(checkpoint), str(out)))
    loaded = keras.saving.load_model(out)
    images = random_images(2, size=32, seed=13)
    expected = ref.embed(module, images)
    assert max_abs_diff(loaded(images, training=False), expected) <= ATOL
    np.testing.assert_array_equal(np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False)))


def test_config_is_checked_before_any_work(tmp_path):
    ckpt = tmp_path / "b.pth"
    ckpt.write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model 'PocketNetX'"):
        ImportConfig("PocketNetX", str(ckpt), "m.keras")
    with pytest.raises(ValueError, match="MobileFaceNet: no PyTorch checkpoint layout for the mobilefacenet family"):
        ImportConfig("MobileFaceNet", str(ckpt), "m.keras")
    with pytest.raises(ValueError, match="iresnet100: --genotype applies to PocketNet models only"):
        ImportConfig("iresnet100", str(ckpt), "m.keras", genotype="softmax_casia")
    with pytest.raises(ValueError, match=r"m\.h5: the output file name must end with \.keras"):
        ImportConfig("PocketNetS-128", str(ckpt), "m.h5")
    with pytest.raises(ValueError, match="embedding_size must be a positive int, received 0"):
        ImportConfig("PocketNetS-128", str(ckpt), "m.keras", embedding_size=0)
    with pytest.raises(FileNotFoundError, match=r"missing\.pth: no such checkpoint file"):
        ImportConfig("PocketNetS-128", str(tmp_path / "missing.pth"), "m.keras")


def test_an_unreadable_checkpoint_fails_before_building(tmp_path):
    ckpt = tmp_path / "b.pth"
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"b\.pth: not a readable PyTorch checkpoint"):
        import_checkpoint(ImportConfig("PocketNetS-128", str(ckpt), str(tmp_path / "m.keras")))
    assert not (tmp_path / "m.keras").exists()
