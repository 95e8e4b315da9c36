"""Cell graphs (Graphviz source, matplotlib fallback), alpha tables and heat-maps."""

import numpy as np
import pytest
from PIL import Image

from pocketnet_tf import genotypes as G
from pocketnet_tf.genotypes import PRIMITIVES
from pocketnet_tf.search import visualize


def _png_ok(path, min_side=200):
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert min(img.size) >= min_side
        pixels = np.asarray(img.convert("L"), dtype=np.float32)
    assert pixels.std() > 5  # not blank
    return pixels


def test_dot_source_has_every_edge_with_its_stride():
    src = visualize.cell_dot_source(G.SOFTMAX_CASIA, reduction=True)
    assert src.startswith("digraph cell {") and src.rstrip().endswith("}")
    assert '"c_{k-1}" -> "0" [label="dw_conv_3x3 (s2)"];' in src
    assert '"c_{k-2}" -> "0" [label="dw_conv_7x7 (s2)"];' in src
    assert '"0" -> "1" [label="skip_connect"];' in src  # from node 0: stride 1
    assert src.count(" -> ") == 8 + 4  # two edges per node, four concatenated nodes
    normal = visualize.cell_dot_source(G.SOFTMAX_CASIA, reduction=False)
    assert "(s2)" not in normal and '"c_{k-2}" -> "3" [label="skip_connect"];' in normal


@pytest.mark.parametrize("dot_binary", [None, "no-such-graphviz-binary"])
def test_cells_fall_back_to_matplotlib(tmp_path, dot_binary):
    for reduction in (False, True):
        png = tmp_path / f"cell{int(reduction)}.png"
        assert visualize.draw_cell(G.SOFTMAX_CASIA, reduction, png, dot_binary=dot_binary) == "matplotlib"
        _png_ok(png)
        assert png.with_suffix(".dot").read_text() == visualize.cell_dot_source(G.SOFTMAX_CASIA, reduction)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell0.dot", "cell0.png", "cell1.dot", "cell1.png"]


def test_alpha_table_marks_the_best_non_none_primitive():
    alphas = [np.zeros((2, 8)), np.zeros((3, 8))]
    alphas[0][0, PRIMITIVES.index("none")] = 3.0
    alphas[0][0, PRIMITIVES.index("avg_pool_3x3")] = 1.0
    alphas[1][2, PRIMITIVES.index("dw_conv_5x5")] = 2.0
    table = visualize.alpha_table(alphas, "normal").splitlines()
    assert table[0] == "normal" and "max_pool_3x3" in table[1] and len(table) == 2 + 5
    row = table[2].split()
    assert row[:3] == ["n0", "<-", "c_{k-2}"]
    values = [float(v.rstrip("*")) for v in row[3:]]
    e = np.exp(alphas[0][0]) / np.exp(alphas[0][0]).sum()
    np.testing.assert_allclose(values, e, atol=5e-5)
    assert row[3 + PRIMITIVES.index("avg_pool_3x3")].endswith("*")  # 'none' is larger but never chosen
    assert table[6].split()[2] == "0" and table[6].split()[3 + PRIMITIVES.index("dw_conv_5x5")].endswith("*")


def test_alpha_history_heat_map(tmp_path):
    rng = np.random.default_rng(0)
    history = [[rng.normal(size=(i + 2, 8)) * e for i in range(4)] for e in range(5)]
    visualize.draw_alpha_history(history, tmp_path / "alpha.png", "normal cell")
    _png_ok(tmp_path / "alpha.png")
    with pytest.raises(ValueError, match="no epochs"):
        visualize.draw_alpha_history([], tmp_path / "empty.png", "x")
    assert not (tmp_path / "empty.png").exists()
