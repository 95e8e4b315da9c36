"""MobileFaceNet baseline and iResNet teachers: sizes, FLOPs, serialisation."""

import numpy as np
import pytest

from pocketnet_tf import models
from tests import factory, helpers


def test_iresnet100_128_matches_original_counts():
    # Spec §5.1: 55,521,216 parameters of which 55,521,088 trainable (features.weight frozen at 1,
    # which Keras expresses as scale=False); 24,192.5093 MFLOPs.
    model = models.build("iresnet100", embedding_size=128)
    cost = models.count_cost(model)
    assert cost.trainable_params == 55_521_088
    assert cost.flops == 24_192_509_312
    model256 = models.build("iresnet100", embedding_size=256)
    cost256 = models.count_cost(model256)
    assert cost256.trainable_params + 256 == 58_732_864
    assert round(cost256.flops / 1e6, 4) == 24198.9322


@pytest.mark.parametrize("name, blocks", [("iresnet18", 8), ("iresnet34", 16), ("iresnet50", 24)])
def test_iresnet_depths(name, blocks):
    model = models.build(name)
    convs2 = [layer for layer in model.layers if layer.name.endswith("_conv2")]
    assert len(convs2) == blocks
    assert model.output.shape[-1] == 512
    assert model.get_layer("fc").kernel.shape == (512 * 7 * 7, 512)


def test_mobilefacenet_sizes():
    # MobileFaceNets paper: 0.99M parameters, 221M MAdds at 128-d; 1.2M with a 512-d embedding.
    cost = models.count_cost(models.build("MobileFaceNet"))
    assert cost.trainable_params == 1_003_136
    assert cost.macs == 220_965_376
    assert models.count_cost(models.build("MobileFaceNet", embedding_size=512)).trainable_params == 1_200_512


@pytest.mark.parametrize("name", ["MobileFaceNet", "iresnet18"])
def test_save_load_round_trip(name, tmp_path):
    model = models.build(name, embedding_size=16, input_size=56)
    factory.randomize_weights(model, seed=2)
    x = factory.random_images(2, 56)
    helpers.assert_keras_save_load_same_outputs(model, x, tmp_path)
    y = np.asarray(model(x, training=False))
    assert y.shape == (2, 16) and np.isfinite(y).all()


def test_registry_lists_paper_names():
    names = models.list_models()
    for n in ["PocketNetS-128", "PocketNetS-256", "PocketNetM-128", "PocketNetM-256", "MobileFaceNet",
              "iresnet18", "iresnet34", "iresnet50", "iresnet100"]:
        assert n in names
