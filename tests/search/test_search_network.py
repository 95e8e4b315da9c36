"""SearchNetwork and SearchCell: paper-exact size, alphas, mixing weights, derivation."""

import math

import keras
import numpy as np
import pytest

from pocketnet_tf import genotypes as G
from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.layers.gdc import GroupedGlobalConv
from pocketnet_tf.search.search_cell import SearchCell
from pocketnet_tf.search.search_network import SearchNetwork
from tests import helpers
from tests.factory import SEARCH_TINY, labelled_images, tiny_search_network


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def _bns(layer):
    return [l for l in layer._flatten_layers() if isinstance(l, keras.layers.BatchNormalization)]


def test_paper_search_network_is_size_exact():
    # Spec §2.2: C=16, 8 cells, multiplier 3, 112x112, 10,572 CASIA classes.
    net = SearchNetwork(10572)
    assert _count(net.network_weights) == 4_156_316
    assert _count(net.alphas) == 224
    assert _count(net.classifier.trainable_weights) == 1_363_788
    assert sum(_count(l.trainable_weights) for l in net.tail) == 431_360
    assert net.reductions == (2, 5, 7)
    assert [c.filters for c in net.cells] == [16, 16, 32, 32, 32, 64, 64, 128]
    assert [type(c.preproc0).__name__ for c in net.cells] == [
        "StdConv", "StdConv", "StdConv", "FactorizedReduce", "StdConv", "StdConv", "FactorizedReduce", "StdConv"]
    assert all(len(c.mixed_ops) == 14 for c in net.cells)
    # 712 affine-free BNs in the cells, 4 affine ones (stem and tail), spec §1.4.
    cell_bns = [bn for c in net.cells for bn in _bns(c)]
    assert len(cell_bns) == 712 and not any(bn.center or bn.scale for bn in cell_bns)
    others = [net.stem_bn] + [l for l in net.tail if isinstance(l, keras.layers.BatchNormalization)]
    assert len(others) == 4 and all(bn.center and bn.scale for bn in others)
    # The tail's GDC is grouped (128 groups of 4 channels) over the 7x7 map, no padding.
    gdc = net.tail[4]
    assert tuple(gdc.kernel.shape) == (7, 7, 4, 512) and gdc.groups == 128
    shapes, s0, s1 = [], (None, 56, 56, 48), (None, 56, 56, 48)
    for cell in net.cells:
        s0, s1 = s1, cell.compute_output_shape(s0, s1)
        shapes.append(s1[1:])
    assert shapes == [(56, 56, 64), (56, 56, 64), (28, 28, 128), (28, 28, 128), (28, 28, 128), (14, 14, 256),
                      (14, 14, 256), (7, 7, 512)]
    # alpha_normal / alpha_reduce: 4 matrices each, (i + 2, 8), initialised as 1e-3 * N(0, 1).
    assert [tuple(a.shape) for a in net.alpha_normal] == [(i + 2, len(PRIMITIVES)) for i in range(4)]
    assert [tuple(a.shape) for a in net.alpha_reduce] == [(i + 2, len(PRIMITIVES)) for i in range(4)]
    a = np.concatenate([np.ravel(v) for v in net.alpha_values()[0] + net.alpha_values()[1]])
    assert 0.8e-3 < a.std() < 1.2e-3 and abs(a.mean()) < 2.5e-4


def test_alphas_are_separate_from_the_weights_and_seeded():
    net = tiny_search_network()
    # Built in the constructor, every sub-layer included (Keras' symbolic build under a
    # distribution strategy would otherwise call the network with the (x, y) pairs of the search).
    assert [l.name for l in net._flatten_layers() if not l.built] == []
    alpha_ids = {id(a) for a in net.alphas}
    weight_ids = {id(w) for w in net.network_weights}
    assert len(alpha_ids) == 2 and not alpha_ids & weight_ids
    assert alpha_ids | weight_ids == {id(v) for v in net.trainable_variables}
    # Same seed, same start (alphas and weights); another seed, another start.
    again = tiny_search_network()
    for a, b in zip(net.trainable_variables, again.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = tiny_search_network(seed=1)
    assert not np.array_equal(net.alpha_values()[0][0], other.alpha_values()[0][0])


def test_mixing_weights_are_the_row_softmax_and_drive_every_cell():
    net = tiny_search_network()
    rng = np.random.default_rng(0)
    for a in net.alphas:
        a.assign(rng.normal(size=a.shape).astype(np.float32))
    normal, reduce = net.mixing_weights()
    for alpha, weights in zip(net.alphas, normal + reduce):
        e = np.exp(alpha.numpy() - alpha.numpy().max(axis=1, keepdims=True))
        np.testing.assert_allclose(weights, e / e.sum(axis=1, keepdims=True), rtol=1e-6)
    x, _ = labelled_images(2, seed=1, size=16)
    x2, _ = labelled_images(2, seed=2, size=16)
    out = np.asarray(net(x, training=False))
    assert not np.allclose(out, np.asarray(net(x2, training=False)))
    # All mixing weight on 'none' on every edge of both cell types: every cell outputs zeros,
    # so the logits no longer depend on the input.
    for a in net.alphas:
        value = np.full(a.shape, -30.0, np.float32)
        value[:, PRIMITIVES.index("none")] = 30.0
        a.assign(value)
    np.testing.assert_allclose(np.asarray(net(x, training=False)), np.asarray(net(x2, training=False)), atol=1e-6)
    # Only the normal cell on 'none': the reduction cells still see the input.
    for a in net.alpha_reduce:
        a.assign(np.zeros(a.shape, np.float32))
    assert not np.allclose(np.asarray(net(x, training=False)), np.asarray(net(x2, training=False)))


def test_genotype_derived_from_hand_set_alphas():
    net = tiny_search_network(num_nodes=2)
    # normal node0: edge 0 -> dw_conv_5x5 (0.9), edge 1 -> max_pool (0.5);
    # normal node1: edge 2 -> skip (1.0), edge 0 -> avg_pool (0.8), edge 1 weak;
    # 'none' is highest on some rows and must be ignored.
    normal = [np.zeros((2, 8), np.float32), np.zeros((3, 8), np.float32)]
    normal[0][0, PRIMITIVES.index("dw_conv_5x5")] = 0.9
    normal[0][1, PRIMITIVES.index("max_pool_3x3")] = 0.5
    normal[0][1, PRIMITIVES.index("none")] = 5.0
    normal[1][2, PRIMITIVES.index("skip_connect")] = 1.0
    normal[1][2, PRIMITIVES.index("dw_conv_3x3")] = 1.0  # a tie: the first primitive wins
    normal[1][0, PRIMITIVES.index("avg_pool_3x3")] = 0.8
    normal[1][1, PRIMITIVES.index("dw_conv_7x7")] = 0.1
    reduce = [np.zeros((2, 8), np.float32), np.zeros((3, 8), np.float32)]
    reduce[0][1, PRIMITIVES.index("dw_conv_3x3")] = 0.7
    reduce[0][0, PRIMITIVES.index("dw_conv_1x1")] = 0.6
    reduce[1][1, PRIMITIVES.index("max_pool_3x3")] = 0.3
    reduce[1][2, PRIMITIVES.index("dw_conv_3x3")] = 0.2
    for var, value in zip(net.alphas, normal + reduce):
        var.assign(value)
    g = net.genotype(rank_by="alpha")
    assert g.normal == ((("dw_conv_5x5", 0), ("max_pool_3x3", 1)), (("skip_connect", 2), ("avg_pool_3x3", 0)))
    assert g.reduce == ((("dw_conv_3x3", 1), ("dw_conv_1x1", 0)), (("max_pool_3x3", 1), ("dw_conv_3x3", 2)))
    assert g.normal_concat == (2, 3) and g.reduce_concat == (2, 3)
    # Ranking by softmax weight: normal node1's skip row shares its mass with dw_conv_3x3
    # (softmax 0.2377) while the avg_pool row does not (0.2412), so the order flips; the rest agrees.
    s = net.genotype(rank_by="softmax")
    assert s.normal == ((("dw_conv_5x5", 0), ("max_pool_3x3", 1)), (("avg_pool_3x3", 0), ("skip_connect", 2)))
    assert s.reduce == g.reduce
    assert s == G.derive(*net.alpha_values(), rank_by="softmax")


def test_gdc_covers_the_final_map_and_pytorch_default_init():
    net = tiny_search_network()
    assert net.final_size == 2
    gdc = net.tail[4]
    width = SEARCH_TINY["head_width"]
    assert tuple(gdc.kernel.shape) == (2, 2, width // SEARCH_TINY["gdc_groups"], width)
    x, _ = labelled_images(2, seed=0, size=16)
    assert tuple(net(x).shape) == (2, SEARCH_TINY["num_classes"])
    # Same numbers as Keras' grouped Conv2D with the same kernel.
    maps = np.random.default_rng(0).normal(size=(3, 2, 2, SEARCH_TINY["head_width"])).astype(np.float32)
    reference = keras.layers.Conv2D(SEARCH_TINY["head_width"], 2, groups=SEARCH_TINY["gdc_groups"], use_bias=False)
    reference.build(maps.shape)
    reference.kernel.assign(gdc.kernel.numpy())
    np.testing.assert_allclose(np.asarray(gdc(maps)), np.asarray(reference(maps)), rtol=1e-5, atol=1e-6)
    checked = 0
    for layer in net._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            fan_in = layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, (keras.layers.Conv2D, GroupedGlobalConv)):
            fan_in = int(np.prod(layer.kernel.shape[:3]))
        elif isinstance(layer, keras.layers.Dense):
            fan_in = layer.kernel.shape[0]
        else:
            continue
        bound = 1 / math.sqrt(fan_in)
        k = np.asarray(layer.kernel)
        assert np.abs(k).max() <= bound + 1e-7, layer.name
        if k.size >= 16:
            assert np.abs(k).max() > 0.5 * bound, layer.name
        checked += 1
    assert checked > 20
    bias = np.asarray(net.classifier.bias)
    assert np.abs(bias).max() <= 1 / math.sqrt(SEARCH_TINY["embedding_size"]) and np.any(bias != 0)


def test_search_cell_shapes_and_strides():
    cell = SearchCell(4, reduction=True, reduction_prev=True, num_nodes=3, name="cell")
    cell.build((None, 16, 16, 6), (None, 8, 8, 6))
    assert [op.name for op in cell.mixed_ops] == [
        "node0_edge0", "node0_edge1", "node1_edge0", "node1_edge1", "node1_edge2",
        "node2_edge0", "node2_edge1", "node2_edge2", "node2_edge3"]
    assert [cell.edge(i, j).strides for i in range(3) for j in range(i + 2)] == [2, 2, 2, 2, 1, 2, 2, 1, 1]
    assert type(cell.preproc0).__name__ == "FactorizedReduce"
    x0, x1 = np.ones((1, 16, 16, 6), np.float32), np.ones((1, 8, 8, 6), np.float32)
    weights = [np.full((i + 2, 8), 1 / 8, np.float32) for i in range(3)]
    assert tuple(cell(x0, x1, weights).shape) == (1, 4, 4, 12)
    with pytest.raises(ValueError, match="expected 3 mixing-weight matrices, received 2"):
        cell(x0, x1, weights[:2])
    with pytest.raises(ValueError, match="pre-processed inputs disagree in size"):
        SearchCell(4, reduction_prev=False).build((None, 16, 16, 6), (None, 8, 8, 6))


def test_config_round_trip_and_bad_arguments():
    net = tiny_search_network()
    helpers.assert_config_round_trip(net)
    helpers.assert_config_round_trip(SearchCell(4, reduction=True, name="c"))
    helpers.assert_config_round_trip(GroupedGlobalConv(8, 2, name="g"))
    with pytest.raises(ValueError, match=r"groups \(3\) must divide filters \(8\)"):
        GroupedGlobalConv(8, 3)
    with pytest.raises(ValueError, match="input_size 20 must be divisible by 8"):
        SearchNetwork(3, channels=4, num_cells=3, input_size=20)
    with pytest.raises(ValueError, match=r"gdc_groups \(3\) must divide head_width \(8\)"):
        SearchNetwork(3, channels=4, num_cells=3, input_size=16, head_width=8, gdc_groups=3)
    with pytest.raises(ValueError, match="num_classes must be an int >= 1, received 0"):
        SearchNetwork(0)
