"""``python -m pocketnet_tf.evaluate``: the one library call behind the CLI (its config: :mod:`pocketnet_tf.eval.config`).

Writes into ``out``::

    results.json            model, backend, and per set: accuracy (fraction), accuracy_std,
                            best_threshold, xnorm, TAR@FAR, pair counts (see the result classes)
    roc_<set>.png           ROC of every .bin set and IJB set
    ijb_<IJBB|IJBC>_scores.npz   pair scores and labels (for re-plotting / other read-outs)
    megaface/...            devkit feature files (raw and, with noise lists, refined)
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from absl import logging

from pocketnet_tf.eval.config import EvalConfig
from pocketnet_tf.io_utils import atomic_path, ensure_dir, write_json_atomic

__all__ = ["EvalConfig", "run_evaluation"]


def _embedder_kwargs(config: EvalConfig) -> dict:
    kwargs = {"batch_size": config.batch_size}
    if str(config.model).lower().endswith(".tflite") and config.num_threads:
        kwargs["num_threads"] = config.num_threads
    return kwargs


def run_evaluation(config: EvalConfig) -> dict:
    """Loads the model once and runs every requested benchmark; returns what results.json holds."""
    from pocketnet_tf.eval.embedders import load_embedder

    out = ensure_dir(config.out, probe=True)  # an unwritable --out fails now, not after the work
    embedder = load_embedder(config.model, **_embedder_kwargs(config))
    results = {
        "model": str(config.model),
        "backend": embedder.backend,
        "input_size": list(embedder.input_size),
        "embedding_size": embedder.embedding_size,
        "normalization": None if embedder.normalization is None else list(embedder.normalization),
        "flip_test": config.flip,
        "sets": {},
    }

    def save():
        write_json_atomic(out / "results.json", results)

    for path in config.bin:
        name, entry = _evaluate_bin(embedder, path, config, out)
        results["sets"][name] = entry
        save()
    if config.ijb:
        name, entry = _evaluate_ijb(embedder, config, out)
        results["sets"][name] = entry
        save()
    if config.megaface_facescrub_images:
        results["megaface"] = _run_megaface(embedder, config, out)
        save()
    save()
    return results


def _evaluate_bin(embedder, path, config: EvalConfig, out: Path) -> tuple[str, dict]:
    """One ``.bin`` set's 10-fold verification (and ROC plot): ``(set name, results entry)``."""
    from pocketnet_tf.eval import verification
    from pocketnet_tf.eval.plots import plot_roc

    start = time.perf_counter()
    result = verification.evaluate_bin(embedder, path, batch_size=config.batch_size, n_folds=config.n_folds,
                                       flip=config.flip, progress=config.progress)
    entry = result.to_json()
    entry["seconds"] = round(time.perf_counter() - start, 3)
    if config.plots and result.fpr.size:
        plot_roc(out / f"roc_{result.name}.png", [(result.name, result.fpr, result.tpr)],
                 title=f"{result.name}: accuracy {100 * result.accuracy:.2f}% ({result.pairs} pairs)")
        entry["roc_png"] = f"roc_{result.name}.png"
    logging.info("%s: accuracy %.5f +- %.5f, best threshold %.2f, XNorm %.4f", result.name, result.accuracy,
                 result.accuracy_std, result.best_threshold, result.xnorm)
    return result.name, entry


def _evaluate_ijb(embedder, config: EvalConfig, out: Path) -> tuple[str, dict]:
    """IJB-B/C 1:1 verification (scores saved as ``.npz``, ROC plot): ``(set name, results entry)``."""
    from pocketnet_tf.eval.ijb import evaluate_ijb
    from pocketnet_tf.eval.plots import plot_roc

    start = time.perf_counter()
    result = evaluate_ijb(embedder, config.ijb, config.ijb_set, batch_size=config.batch_size,
                          workers=config.workers, progress=config.progress, flip=config.flip)
    entry = result.to_json()
    entry["seconds"] = round(time.perf_counter() - start, 3)
    with atomic_path(out / f"ijb_{result.name}_scores.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, scores=result.scores, labels=result.labels)
    entry["scores_npz"] = f"ijb_{result.name}_scores.npz"
    if config.plots:
        plot_roc(out / f"roc_{result.name}.png", [(result.name, result.fpr, result.tpr)],
                 title=f"{result.name} 1:1: TAR {100 * result.tar_at_far[1e-4]:.2f}% at FAR 1e-4",
                 min_fpr=1e-6)
        entry["roc_png"] = f"roc_{result.name}.png"
    logging.info("%s: TAR@FAR %s", result.name, entry["tar_at_far"])
    return result.name, entry


def _run_megaface(embedder, config: EvalConfig, out: Path) -> dict:
    from pocketnet_tf.eval import megaface

    raw_fs, raw_mf = out / "megaface" / "facescrub_raw", out / "megaface" / "megaface_raw"
    summary = {"algo": config.megaface_algo, "facescrub_features": str(raw_fs), "megaface_features": str(raw_mf)}
    summary["facescrub_embedded"] = megaface.export_features(
        embedder, config.megaface_facescrub_images, config.megaface_facescrub_list, raw_fs,
        algo=config.megaface_algo, batch_size=config.batch_size, skip_existing=config.megaface_resume,
        progress=config.progress)
    summary["megaface_embedded"] = megaface.export_features(
        embedder, config.megaface_distractor_images, config.megaface_distractor_list, raw_mf,
        algo=config.megaface_algo, batch_size=config.batch_size, skip_existing=config.megaface_resume,
        progress=config.progress)
    if config.megaface_facescrub_noises:
        refined_fs, refined_mf = out / "megaface" / "facescrub_refined", out / "megaface" / "megaface_refined"
        summary["refinement"] = megaface.refine_features(
            facescrub_images=config.megaface_facescrub_list, megaface_images=config.megaface_distractor_list,
            facescrub_features=raw_fs, megaface_features=raw_mf,
            facescrub_noises=config.megaface_facescrub_noises, megaface_noises=config.megaface_distractor_noises,
            algo=config.megaface_algo, facescrub_out=refined_fs, megaface_out=refined_mf)
        summary.update(facescrub_refined=str(refined_fs), megaface_refined=str(refined_mf))
    return summary
