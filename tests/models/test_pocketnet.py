"""PocketNet derived networks: paper-exact size, structure, serialisation."""

import json
import re

import keras
import numpy as np
import pytest

from pocketnet_tf import genotypes as G
from pocketnet_tf import models
from tests import factory, helpers

# Spec §3.4 / §5.1.
EXPECTED = {
    "PocketNetS-128": (925_632, 15_232, 587_110_016, 283_541_120),
    "PocketNetS-256": (991_424, 15_488, 587_241_344, 283_606_656),
    "PocketNetM-128": (1_686_656, 16_064, 1_099_024_384, 538_215_680),
    "PocketNetM-256": (1_752_448, 16_320, 1_099_155_712, 538_281_216),
}


@pytest.fixture(scope="module")
def preset():
    """``preset(name)``: the full-size preset, built once for this module (~10 s each on this
    machine). The tests below read its structure (layers, shapes, parameter and FLOP counts), which
    no weight value changes; the save/load test randomises its weights."""
    built = {}

    def get(name):
        if name not in built:
            built[name] = models.build(name)
        return built[name]

    return get


def _block_params(model, prefix):
    seen = set()
    total = 0
    for layer in model.layers:
        if layer.name.startswith(prefix):
            for w in layer.trainable_weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    total += int(np.prod(w.shape))
    return total


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_sizes_are_paper_exact(name, preset):
    params, stats, flops, macs = EXPECTED[name]
    model = preset(name)
    cost = models.count_cost(model)
    assert cost.trainable_params == params
    assert cost.non_trainable_params == stats
    assert cost.flops == flops
    assert cost.macs == macs
    assert model.count_params() == params + stats
    assert model.output.shape[-1] == int(name.split("-")[1])


def test_s128_per_block_params_and_flop_breakdown(preset):
    model = preset("PocketNetS-128")
    per_cell = [_block_params(model, f"cell{i}_") for i in range(18)]
    assert per_cell == [5632] * 6 + [10688, 16832] + [18944] * 4 + [35712, 60288] + [68608] * 3 + [128768]
    assert _block_params(model, "stem_") == 1856
    assert _block_params(model, "tail_") == 356_096
    cost = models.count_cost(model)
    assert cost.breakdown == {
        "conv": 483_024_896, "depthwise": 84_057_344, "batchnorm": 10_262_272,
        "activation": 8_580_096, "pool": 1_185_408,
    }


def test_m128_per_block_params(preset):
    model = preset("PocketNetM-128")
    per_cell = [_block_params(model, f"cell{i}_") for i in range(9)]
    assert per_cell == [18944] * 3 + [35712, 60288, 68608, 128768, 227072, 486912]
    assert _block_params(model, "stem_") == 3712
    assert _block_params(model, "tail_") == 618_752


def test_s128_feature_map_shapes_follow_spec_table(preset):
    model = preset("PocketNetS-128")
    shape = {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers}
    assert shape["stem_1_bn"] == (56, 56, 64)
    for i in range(6):
        assert shape[f"cell{i}_out"] == (56, 56, 64)
    assert shape["cell6_out"] == shape["cell7_out"] == (28, 28, 128)
    assert shape["cell12_out"] == shape["cell13_out"] == (14, 14, 256)
    assert shape["cell17_out"] == (7, 7, 512)
    assert type(model.get_layer("cell7_preproc0")).__name__ == "FactorizedReduce"
    assert type(model.get_layer("cell13_preproc0")).__name__ == "FactorizedReduce"
    assert type(model.get_layer("cell8_preproc0")).__name__ == "StdConv"
    assert models.reduction_indices(18) == (6, 12, 17)
    assert models.reduction_indices(9) == (3, 6, 8)
    # Reduction-cell skip edges come from node0: identities, not FactorizedReduce.
    assert isinstance(model.get_layer("cell6_node1_edge0_skip_connect"), keras.layers.Identity)
    assert model.get_layer("cell6_node0_edge1_dw_conv_7x7").strides == 2
    assert model.get_layer("tail_4_gdc").kernel_size == (7, 7)


def test_tiny_custom_genotype_save_load_and_config(tmp_path):
    geno = G.SOFTMAX_CIFAR10
    model = models.build("PocketNetS-128", genotype=geno, channels=4, num_cells=3, embedding_size=8, input_size=32)
    factory.randomize_weights(model)
    x = factory.random_images(2, 32)
    helpers.assert_keras_save_load_same_outputs(model, x, tmp_path)
    cfg = model.get_config()
    assert cfg["genotype"] == geno.to_dict()
    rebuilt = models.PocketNet.from_config(json.loads(json.dumps(cfg)))
    assert rebuilt.count_params() == model.count_params()
    assert G.resolve(cfg["genotype"]) == geno


def _edge_layer_names(genotype, num_cells):
    reductions = models.reduction_indices(num_cells)
    return {f"cell{i}_node{n}_edge{e}_{primitive}"
            for i in range(num_cells)
            for n, edges in enumerate(genotype.cell(i in reductions)[0])
            for e, (primitive, _) in enumerate(edges)}


def test_genotype_from_file_and_outputs_are_deterministic_in_inference(tmp_path):
    # A non-default genotype: an ignored ``genotype=`` (the default softmax_casia built) must fail.
    geno = G.SOFTMAX_CIFAR10
    assert _edge_layer_names(geno, 3) != _edge_layer_names(G.SOFTMAX_CASIA, 3)
    path = tmp_path / "genotype.json"
    G.save(geno, path)
    a = models.build("PocketNetS-128", genotype=str(path), channels=2, num_cells=3, embedding_size=4, input_size=32)
    assert a.genotype == geno and a.get_config()["genotype"] == geno.to_dict()
    built = {layer.name for layer in a.layers if re.fullmatch(r"cell\d+_node\d+_edge\d+_\w+", layer.name)}
    assert built == _edge_layer_names(geno, 3)
    x = factory.random_images(2, 32, seed=3)
    y1 = np.asarray(a(x, training=False))
    y2 = np.asarray(a(x, training=False))
    np.testing.assert_array_equal(y1, y2)
    assert np.isfinite(y1).all() and np.abs(y1).sum() > 0


def test_full_size_save_load_round_trip(tmp_path, preset):
    model = preset("PocketNetS-128")
    factory.randomize_weights(model, seed=5)
    helpers.assert_keras_save_load_same_outputs(model, factory.random_images(2), tmp_path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown model 'PocketNetX'"):
        models.build("PocketNetX")
    with pytest.raises(ValueError, match="a genotype applies to PocketNet models only"):
        models.build("iresnet18", genotype="softmax_casia")
    with pytest.raises(G.GenotypeError, match="not a published genotype"):
        models.build("PocketNetS-128", genotype="no_such_genotype")
    with pytest.raises(ValueError, match="num_cells must be an int >= 3, received 2"):
        models.PocketNet(num_cells=2)
