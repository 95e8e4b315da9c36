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


def test_huge_range_is_refused_before_it_is_built(tmp_path):
    # 429 bytes that used to build a 10**7-item list (~470 MB) before failing validation.
    path = tmp_path / "g.txt"
    path.write_text(G.SOFTMAX_CASIA_TEXT.replace("normal_concat=range(2, 6)", "normal_concat=range(0, 10000000)"))
    with pytest.raises(G.GenotypeError, match=r"g.txt: .*range\(\) of 10000000 items; a genotype needs at most 1024"):
        G.load(path)
    with pytest.raises(G.GenotypeError, match=r"step must not be zero"):
        G.parse("Genotype(normal_concat=range(0, 4, 0))")
    with pytest.raises(G.GenotypeError, match=r"longer than 9 digits"):
        G.parse("Genotype(normal_concat=[" + "9" * 5000 + "])")


def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path):
    text = "Genotype(normal=" + "[" * 100_000 + "]" * 100_000 + ")"
    with pytest.raises(G.GenotypeError, match=r"position 24 .*nested deeper than 8 levels"):
        G.parse(text)
    path = tmp_path / "g.json"
    path.write_text('{"normal": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(G.GenotypeError, match=r"g.json: genotype JSON: not valid JSON \(nesting deeper than 8"):
        G.load(path)
    # Exactly the nesting a genotype needs still parses (and empty/trailing-comma lists still work).
    assert G.parse(G.SOFTMAX_CASIA_TEXT.replace("range(2, 6)", "[2, 3, 4, 5,]")) == G.SOFTMAX_CASIA


def test_tokenizer_is_linear_in_the_text_length():
    # Counting characters copied, not seconds: the old tokenizer copied the rest of the text once
    # per token (text[pos:].strip()), quadratic in the length (1.3 MB took 27 s).
    class CountingText(str):
        copied = 0

        def __getitem__(self, index):
            part = str.__getitem__(self, index)
            CountingText.copied += len(part)
            return part

    edge = "('dw_conv_3x3', 0), "
    for count in (500, 2000):
        text = CountingText("Genotype(normal=[" + edge * count + "])")
        CountingText.copied = 0
        with pytest.raises(G.GenotypeError, match="missing keys"):
            G.parse(text)
        assert CountingText.copied <= 2 * len(text), (count, CountingText.copied)


def test_big_genotype_file_and_bad_encoding_are_refused(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("Genotype(" + " " * (G.MAX_FILE_BYTES + 1) + ")")
    with pytest.raises(G.GenotypeError, match=r"big.txt: genotype file is \d+ bytes; at most 1048576"):
        G.load(path)
    path.write_bytes(b"Genotype(normal=\xff)")
    with pytest.raises(G.GenotypeError, match=r"big.txt: genotype file is not UTF-8"):
        G.load(path)
    with pytest.raises(G.GenotypeError, match=r"normal_concat\[0\]: expected an integer state index, got 2.7"):
        G.from_json(json.dumps({**G.SOFTMAX_CASIA.to_dict(), "normal_concat": [2.7, 3, 4, 5]}))
