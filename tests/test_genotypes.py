import json

import numpy as np
import pytest

from pocketnet_tf import genotypes as G


def test_published_casia_matches_spec_table():
    g = G.SOFTMAX_CASIA
    assert g.normal == (
        (("dw_conv_3x3", 0), ("dw_conv_1x1", 1)),
        (("dw_conv_3x3", 2), ("dw_conv_5x5", 0)),
        (("dw_conv_3x3", 3), ("dw_conv_3x3", 0)),
        (("dw_conv_3x3", 4), ("skip_connect", 0)),
    )
    assert g.reduce[1] == (("skip_connect", 2), ("dw_conv_5x5", 1))
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


@pytest.mark.parametrize("g", [G.SOFTMAX_CASIA, G.SOFTMAX_CIFAR10])
def test_text_and_json_round_trip(g):
    assert G.parse(G.to_text(g)) == g
    assert G.from_json(G.to_json(g)) == g
    assert G.to_text(G.SOFTMAX_CASIA) == G.SOFTMAX_CASIA_TEXT


def test_save_load(tmp_path):
    for name in ("g.json", "g.txt"):
        G.save(G.SOFTMAX_CIFAR10, tmp_path / name)
        assert G.load(tmp_path / name) == G.SOFTMAX_CIFAR10
    assert json.loads((tmp_path / "g.json").read_text())["normal_concat"] == [2, 3, 4, 5]


def test_parse_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"Genotype(normal=__import__('os').system('touch {marker}'))"
    with pytest.raises(G.GenotypeError, match=r"position 32 \(line 1, column 33\): unexpected character '\.'"):
        G.parse(hostile)
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("Genotype(normal=[[('dw_conv_3x3', 0)]", r"position \d+ .*expected"),
        ("Genotipe(normal=[])", r"position 0 .*expected 'Genotype\('"),
        ("Genotype(normal=[[('dw_conv_3x3', 0)]], bogus=1)", r"unknown field 'bogus'"),
        ("Genotype(normal=[[('dw_conv_3x3', 0)]]) extra", r"unexpected 'extra'"),
        ("Genotype(normal=[[('dw_conv_3x3', 0)]] $)", r"position 39 .*unexpected character '\$'"),
    ],
)
def test_malformed_text_names_position(text, message):
    with pytest.raises(G.GenotypeError, match=message):
        G.parse(text)


def test_invalid_genotypes_rejected():
    d = G.SOFTMAX_CASIA.to_dict()
    d["normal"][0][0] = ["conv_9x9", 0]
    with pytest.raises(G.GenotypeError, match=r"normal\[0\]\[0\]: unknown primitive 'conv_9x9'"):
        G.Genotype.from_dict(d)
    d = G.SOFTMAX_CASIA.to_dict()
    d["reduce"][1][0] = ["dw_conv_3x3", 3]
    with pytest.raises(G.GenotypeError, match=r"reduce\[1\]\[0\]: source 3 out of range for node 1"):
        G.Genotype.from_dict(d)
    d = G.SOFTMAX_CASIA.to_dict()
    d["normal"][0][0] = ["none", 0]
    with pytest.raises(G.GenotypeError, match="'none' cannot be an edge"):
        G.Genotype.from_dict(d)


def _alphas_for(genotype_cell, rng):
    """Hand-made alphas whose derivation must give ``genotype_cell``."""
    alphas = []
    for i, node in enumerate(genotype_cell):
        a = rng.uniform(-0.1, 0.1, size=(i + 2, len(G.PRIMITIVES)))
        for rank, (op, src) in enumerate(node):
            a[src, G.PRIMITIVES.index(op)] = 5.0 - rank
        alphas.append(a)
    return alphas


def test_derive_recovers_planted_genotype():
    rng = np.random.default_rng(0)
    g = G.SOFTMAX_CASIA
    derived = G.derive(_alphas_for(g.normal, rng), _alphas_for(g.reduce, rng))
    assert derived == g


def test_derive_ignores_none_and_breaks_ties_deterministically():
    none = G.PRIMITIVES.index("none")
    a0 = np.zeros((2, 8))
    a0[0, none] = 100.0  # 'none' dominates edge 0 but must be ignored
    a0[0, 3] = 1.0
    a0[1, 4] = 1.0  # tie between edges: earlier edge first; tie inside a row: first op
    nodes = [a0] + [np.zeros((i + 2, 8)) for i in range(1, 4)]
    g = G.derive(nodes, nodes)
    assert g.normal[0] == (("dw_conv_3x3", 0), ("dw_conv_5x5", 1))
    # All-zero rows: first primitive (max_pool_3x3) and edges 0, 1.
    assert g.normal[3] == (("max_pool_3x3", 0), ("max_pool_3x3", 1))


def test_derive_rank_by_alpha_vs_softmax_differ_as_documented():
    # Edge 0 has the larger raw logit but a flatter row; by softmax weight edge 1 wins.
    a = np.zeros((2, 8))
    a[0, :7] = 2.0
    a[0, 3] = 2.5
    a[1, 4] = 2.0
    nodes = [a] + [np.zeros((i + 2, 8)) for i in range(1, 4)]
    by_alpha = G.derive(nodes, nodes, k=1, rank_by="alpha")
    by_softmax = G.derive(nodes, nodes, k=1, rank_by="softmax")
    assert by_alpha.normal[0] == (("dw_conv_3x3", 0),)
    assert by_softmax.normal[0] == (("dw_conv_5x5", 1),)
