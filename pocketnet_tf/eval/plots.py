"""ROC plots as PNG (matplotlib, Agg backend; written atomically)."""

from __future__ import annotations

import numpy as np

from pocketnet_tf.io_utils import atomic_path

__all__ = ["plot_roc"]


def plot_roc(path, curves, *, title: str, min_fpr: float | None = None) -> None:
    """Plots TPR against FPR (log scale) for one or more curves.

    Args:
      path: the PNG to write.
      curves: ``[(label, fpr, tpr), ...]``.
      title: the figure title.
      min_fpr: left end of the FPR axis (default: the smallest positive FPR of the curves).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    prepared = [(label, np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64))
                for label, fpr, tpr in curves]
    lowest = [fpr[fpr > 0].min() for _, fpr, _ in prepared if (fpr > 0).any()]
    left = min_fpr if min_fpr is not None else min(lowest + [0.1])
    for label, fpr, tpr in prepared:
        # Log axis: the FPR-0 points are drawn at the left edge, so the curve starts there.
        ax.plot(np.maximum(fpr, left), tpr, label=label, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlim(left, 1.0)
    ax.set_ylim(0.0, 1.02)  # keep a TPR-1 line visible above the frame edge
    ax.set_xlabel("False accept rate")
    ax.set_ylabel("True accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", linestyle=":", linewidth=0.5)
    if curves:
        ax.legend(loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
