"""Per-epoch bookkeeping of a search: validation, genotype derivation, alpha history, pictures.

At the end of every epoch :class:`SearchMonitor` evaluates top-1 accuracy on the validation
view, derives the genotype from the current alphas (:func:`pocketnet_tf.genotypes.derive`), logs
it with the softmax(alpha) tables, appends everything to ``history.json`` and redraws the
pictures. The history survives a resume: entries of epochs that are run again are replaced.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np
from absl import logging

from pocketnet_tf import genotypes as genotypes_lib
from pocketnet_tf.io_utils import write_json_atomic
from pocketnet_tf.search import visualize

HISTORY_FILE = "history.json"


def read_history(path) -> list[dict]:
    """The epochs recorded in ``history.json`` (empty if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        epochs = data["epochs"]
        for entry in epochs:
            int(entry["epoch"])
            genotypes_lib.Genotype.from_dict(entry["genotype"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable search history ({err})") from err
    return epochs


def select_epoch(history: list[dict], how: str) -> dict:
    """The epoch whose genotype is the search result.

    ``"final"``: the last epoch (DARTS). ``"best"``: the highest validation top-1, the later epoch
    on ties (the original's ``is_best = best_top1 <= top1``; its validation half is the one that
    also trains alpha, spec §9 item 12e).
    """
    if not history:
        raise ValueError("no search epoch has finished")
    if how == "final":
        return history[-1]
    if how == "best":
        best = history[0]
        for entry in history[1:]:
            if entry["val_accuracy"] >= best["val_accuracy"]:
                best = entry
        return best
    raise ValueError(f"select_genotype must be 'final' or 'best', received {how!r}")


def alpha_arrays(entry: dict, kind: str) -> list[np.ndarray]:
    return [np.asarray(a, dtype=np.float64) for a in entry[f"alpha_{kind}"]]


def draw_pictures(run_dir, genotype, history: list[dict]) -> dict:
    """Cell graphs of ``genotype`` and alpha heat-maps of ``history``; returns ``{name: path}``."""
    run_dir = Path(run_dir)
    out = {}
    renderers = set()
    for kind, reduction in (("normal", False), ("reduce", True)):
        png = run_dir / f"{kind}.png"
        renderers.add(visualize.draw_cell(genotype, reduction, png))
        out[f"{kind}_cell"] = str(png)
    for kind in ("normal", "reduce"):
        png = run_dir / f"alpha_{kind}.png"
        visualize.draw_alpha_history([alpha_arrays(e, kind) for e in history], png,
                                     f"softmax(alpha_{kind}) per edge over epochs")
        out[f"alpha_{kind}"] = str(png)
    out["renderer"] = "+".join(sorted(renderers))
    return out


class SearchMonitor(keras.callbacks.Callback):
    """Epoch-end validation, genotype derivation, logging, ``history.json`` and pictures.

    Args:
      network: the :class:`SearchNetwork` being searched.
      run_dir: where ``history.json`` and the pictures go.
      val_dataset: ``(images, labels)`` batches of the validation view (evaluated with
        ``model.evaluate``; ``None`` skips validation).
      val_steps: batches of ``val_dataset`` (its cardinality is unknown to Keras because the
        pipeline filters corrupt records; ``None``: until exhausted).
      rank_edges_by: ``"softmax"`` or ``"alpha"`` (see :func:`pocketnet_tf.genotypes.derive`).
      draw_every_epoch: redraw the pictures after every epoch (else only via :func:`draw_pictures`).
      history: epochs recorded before (a resumed run); entries from the first epoch run here on
        are replaced.
    """

    def __init__(self, network, run_dir, val_dataset=None, *, val_steps=None, rank_edges_by="softmax",
                 draw_every_epoch=True, history=None):
        super().__init__()
        self.network = network
        self.run_dir = Path(run_dir)
        self.val_dataset = val_dataset
        self.val_steps = val_steps
        self.rank_edges_by = rank_edges_by
        self.draw_every_epoch = draw_every_epoch
        self.history = list(history or [])
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        record = {"epoch": int(epoch) + 1}
        for key in ("loss", "accuracy", "alpha_loss"):
            if key in logs:
                record[key] = float(logs[key])
        optimizer = self.model.optimizer
        # The rate this epoch used (the iteration counter already points at the next step).
        record["weight_lr"] = float(keras.ops.convert_to_numpy(_lr_at(optimizer, int(optimizer.iterations.numpy()) - 1)))
        if self.val_dataset is not None:
            results = self.model.evaluate(self.val_dataset, steps=self.val_steps, verbose=0, return_dict=True)
            record["val_loss"] = float(results["loss"])
            record["val_accuracy"] = float(results["accuracy"])
            logs["val_loss"], logs["val_accuracy"] = record["val_loss"], record["val_accuracy"]
        else:
            record["val_accuracy"] = float("nan")
        normal, reduce = self.network.alpha_values()
        genotype = genotypes_lib.derive(normal, reduce, k=2, rank_by=self.rank_edges_by)
        record["genotype"] = genotype.to_dict()
        record["genotype_text"] = genotypes_lib.to_text(genotype)
        record["alpha_normal"] = [a.tolist() for a in normal]
        record["alpha_reduce"] = [a.tolist() for a in reduce]
        record["seconds"] = round(time.time() - self._epoch_start, 2) if self._epoch_start else None
        self.history = [e for e in self.history if e["epoch"] < record["epoch"]] + [record]
        write_json_atomic(self.run_dir / HISTORY_FILE, {"epochs": self.history})

        logging.info(
            "epoch %d: loss %.4f, train top-1 %.4f, alpha loss %.4f, val loss %.4f, val top-1 %.4f, lr %.5f",
            record["epoch"], record.get("loss", float("nan")), record.get("accuracy", float("nan")),
            record.get("alpha_loss", float("nan")), record.get("val_loss", float("nan")), record["val_accuracy"],
            record["weight_lr"],
        )
        logging.info("epoch %d genotype = %s", record["epoch"], record["genotype_text"])
        logging.info("\n%s", visualize.alpha_table(normal, f"epoch {record['epoch']}: softmax(alpha_normal)"))
        logging.info("\n%s", visualize.alpha_table(reduce, f"epoch {record['epoch']}: softmax(alpha_reduce)"))
        if self.draw_every_epoch:
            draw_pictures(self.run_dir, genotype, self.history)


def _lr_at(optimizer, step: int):
    lr = optimizer._learning_rate
    if isinstance(lr, keras.optimizers.schedules.LearningRateSchedule):
        return lr(max(step, 0))
    return lr


def read_json_or_empty(path) -> dict:
    """A JSON object from ``path``, or ``{}`` if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data
