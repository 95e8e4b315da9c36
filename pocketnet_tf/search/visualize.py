"""Pictures of a search: the derived cells as graphs and the softmax(alpha) weights over epochs.

Cells are drawn with Graphviz when its ``dot`` binary is on the PATH (the ``.dot`` source is
always written beside the picture), otherwise with matplotlib. Every file is written atomically.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from pocketnet_tf.genotypes import PRIMITIVES, Genotype
from pocketnet_tf.io_utils import atomic_path, write_text_atomic


def _state_name(index: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(index, str(index - 2))


def cell_dot_source(genotype: Genotype, reduction: bool) -> str:
    """Graphviz source of the normal (``reduction=False``) or reduction cell."""
    nodes, concat = genotype.cell(reduction)
    title = "reduction cell" if reduction else "normal cell"
    lines = [
        "digraph cell {",
        f'  label="{title}"; labelloc=t; rankdir=LR; fontname="Helvetica";',
        '  node [style="filled,rounded", shape=box, fontname="Helvetica", penwidth=2];',
        '  edge [fontname="Helvetica", fontsize=11];',
        '  "c_{k-2}" [fillcolor=darkseagreen2];',
        '  "c_{k-1}" [fillcolor=darkseagreen2];',
    ]
    for i in range(len(nodes)):
        lines.append(f'  "{i}" [fillcolor=lightblue, shape=circle];')
    lines.append('  "c_{k}" [fillcolor=palegoldenrod];')
    for i, edges in enumerate(nodes):
        for op, src in edges:
            stride = " (s2)" if reduction and src < 2 else ""
            lines.append(f'  "{_state_name(src)}" -> "{i}" [label="{op}{stride}"];')
    for idx in concat:
        lines.append(f'  "{_state_name(idx)}" -> "c_{{k}}" [color=gray];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _render_dot(source: str, png: Path, dot_binary: str) -> None:
    with atomic_path(png) as tmp:
        subprocess.run([dot_binary, "-Tpng", "-o", str(tmp)], input=source.encode(), check=True,
                       capture_output=True, timeout=60)


def _render_matplotlib(genotype: Genotype, reduction: bool, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    nodes, concat = genotype.cell(reduction)
    n = len(nodes)
    pos = {0: (0.0, 2.0), 1: (0.0, -2.0)}
    for i in range(n):
        pos[i + 2] = (3.0 + 3.0 * i, 1.3 if i % 2 == 0 else -1.3)
    out_xy = (3.0 * n + 1.5, 0.0)
    fig, ax = plt.subplots(figsize=(1.4 * (out_xy[0] + 2.4), 1.4 * 5.6))
    ax.set_xlim(-1.2, out_xy[0] + 1.2)
    ax.set_ylim(-2.8, 2.8)
    ax.set_aspect("equal")  # so the label formula below lands on the drawn arcs
    ax.axis("off")
    ax.set_title("reduction cell" if reduction else "normal cell")

    def box(xy, text, color):
        ax.add_patch(FancyBboxPatch((xy[0] - 0.55, xy[1] - 0.28), 1.1, 0.56, boxstyle="round,pad=0.05",
                                    facecolor=color, edgecolor="black", zorder=3))
        ax.text(xy[0], xy[1], text, ha="center", va="center", fontsize=10, zorder=4)

    for i, edges in enumerate(nodes):
        for e, (op, src) in enumerate(edges):
            start, end = pos[src], pos[i + 2]
            bend = 0.2 if e == 0 else -0.2
            ax.annotate("", xy=end, xytext=start, zorder=1,
                        arrowprops=dict(arrowstyle="-|>", color="black", shrinkA=30, shrinkB=30, mutation_scale=16,
                                        connectionstyle=f"arc3,rad={bend}"))
            # Midpoint of matplotlib's arc3 quadratic Bezier: chord midpoint + rad/2 * (dy, -dx).
            dx, dy = end[0] - start[0], end[1] - start[1]
            mid = ((start[0] + end[0]) / 2 + bend * dy / 2, (start[1] + end[1]) / 2 - bend * dx / 2)
            stride = " (s2)" if reduction and src < 2 else ""
            ax.text(mid[0], mid[1], f"{op}{stride}", ha="center", va="center", fontsize=8, zorder=5,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.85))
    for idx in concat:
        ax.annotate("", xy=out_xy, xytext=pos[idx], zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="gray", shrinkA=30, shrinkB=30, mutation_scale=16))
    box(pos[0], "c_{k-2}", "#b4eeb4")
    box(pos[1], "c_{k-1}", "#b4eeb4")
    for i in range(n):
        box(pos[i + 2], str(i), "#add8e6")
    box(out_xy, "c_{k}", "#eee8aa")
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)


def draw_cell(genotype: Genotype, reduction: bool, png, *, dot_binary: str | None = "dot") -> str:
    """Draws one cell to ``png`` (and its Graphviz source to ``png`` with suffix ``.dot``).

    Args:
      dot_binary: name or path of Graphviz ``dot``; ``None`` forces matplotlib.

    Returns:
      ``"graphviz"`` or ``"matplotlib"``: the renderer used.
    """
    png = Path(png)
    source = cell_dot_source(genotype, reduction)
    write_text_atomic(png.with_suffix(".dot"), source)
    found = shutil.which(dot_binary) if dot_binary else None
    if found:
        try:
            _render_dot(source, png, found)
            return "graphviz"
        except (OSError, subprocess.SubprocessError):
            pass  # a broken Graphviz install: fall back to matplotlib
    _render_matplotlib(genotype, reduction, png)
    return "matplotlib"


def softmax_rows(alpha: np.ndarray) -> np.ndarray:
    a = np.asarray(alpha, dtype=np.float64)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def alpha_table(alphas: Sequence[np.ndarray], title: str) -> str:
    """Plain-text softmax(alpha) table: one row per edge (``node i <- state j``), one column per
    primitive, the largest non-``none`` weight of each row marked with ``*``."""
    names = [p.replace("_conv", "") for p in PRIMITIVES]
    width = max(9, max(len(n) for n in names) + 1)
    lines = [title, f"{'edge':<14}" + "".join(f"{n:>{width}} " for n in names)]
    for i, alpha in enumerate(alphas):
        weights = softmax_rows(alpha)
        for j, row in enumerate(weights):
            best = int(np.argmax(row[:-1]))
            cells = "".join(
                f"{v:>{width}.4f}{'*' if k == best else ' '}" for k, v in enumerate(row)
            )
            lines.append(f"{f'n{i} <- {_state_name(j)}':<14}" + cells)
    return "\n".join(lines)


def draw_alpha_history(history: Sequence[Sequence[np.ndarray]], png, title: str) -> None:
    """Heat-maps of softmax(alpha) over epochs: one panel per edge (rows: primitives, columns:
    epochs).

    Args:
      history: per epoch, the per-node alpha matrices of one cell type.
      png: output path.
      title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not history:
        raise ValueError("draw_alpha_history: no epochs to draw")
    # (epochs, edges, primitives)
    per_epoch = [np.concatenate([softmax_rows(a) for a in alphas], axis=0) for alphas in history]
    data = np.stack(per_epoch, axis=0)
    epochs, edges, prims = data.shape
    edge_names = [(i, j) for i, alphas in enumerate(history[0]) for j in range(np.asarray(alphas).shape[0])]
    cols = min(edges, 5)
    rows = -(-edges // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols + 1.6, 2.1 * rows + 0.8), squeeze=False)
    # Scale to the observed range: early in a search all weights sit near 1/8 and a [0, 1]
    # scale would show nothing.
    vmin, vmax = float(data.min()), float(data.max())
    image = None
    for k in range(rows * cols):
        ax = axes[k // cols][k % cols]
        if k >= edges:
            ax.axis("off")
            continue
        image = ax.imshow(data[:, k, :].T, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax,
                          interpolation="nearest", extent=(0.5, epochs + 0.5, prims - 0.5, -0.5))
        i, j = edge_names[k]
        ax.set_title(f"node {i} <- {_state_name(j)}", fontsize=9)
        ax.set_yticks(range(prims))
        ax.set_yticklabels(PRIMITIVES if k % cols == 0 else [], fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        if k // cols == rows - 1:
            ax.set_xlabel("epoch", fontsize=8)
    fig.suptitle(title)
    fig.subplots_adjust(hspace=0.55, wspace=0.15)
    fig.colorbar(image, ax=axes, shrink=0.8, label="softmax(alpha)")
    with atomic_path(Path(png)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
