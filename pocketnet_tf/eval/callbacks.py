"""Keras callback: verification on ``.bin`` sets during training (spec §6.9).

The original evaluates every 5,686 global steps (half an epoch) on the ``.bin`` sets that exist,
logging XNorm, "Accuracy-Flip" mean +- std and the best value so far. This callback does the
same with the protocol of :mod:`pocketnet_tf.eval.verification`, every ``every_n_steps`` global
steps and/or every ``every_n_epochs`` epochs.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from absl import logging

from pocketnet_tf.eval.embedders import KerasEmbedder
from pocketnet_tf.eval.verification import VerificationSet, evaluate_set, load_verification_set

__all__ = ["VerificationCallback"]


def write_scalars(writer, scalars: dict, step: int) -> None:
    """Writes TensorBoard scalar events (also used by the training callbacks)."""
    # tf.summary.scalar needs the tensorboard package, which tensorflow-cpu does not install;
    # tf.summary.write with the scalars plugin's metadata writes the same event records.
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = "scalars"
    blob = metadata.SerializeToString()
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=blob)
    writer.flush()


class VerificationCallback(keras.callbacks.Callback):
    """Evaluates verification sets during ``fit``; logs to TensorBoard and to the logs dict.

    Args:
      sets: ``.bin`` paths, a ``{name: path}`` dict, or loaded
        :class:`~pocketnet_tf.eval.verification.VerificationSet` objects. Paths are read (restricted
        unpickler) and decoded once, at the model's input size, when training begins.
      every_n_steps: evaluate when the global step (optimiser iterations) is a multiple of this;
        0 disables step-based evaluation.
      every_n_epochs: evaluate at the end of every this-many epochs; 0 disables.
      embedding_model: the Keras model to embed with. ``"auto"``: the trained model's
        ``backbone`` attribute if it is a Keras model (distillation / margin-head wrappers),
        else the trained model itself. A string names another attribute; a model is used as is.
      batch_size, n_folds, flip: passed to the protocol.
      log_dir: TensorBoard directory; scalars ``verification/<set>/{accuracy, accuracy_std,
        xnorm, best_accuracy}`` at the global step. ``None``: no TensorBoard output.

    After each evaluation the epoch-end ``logs`` get ``<set>_accuracy``, ``<set>_accuracy_std``,
    ``<set>_xnorm`` and ``<set>_best_accuracy`` (so ``History`` and other callbacks see them;
    step-based results also go into the batch logs). ``best`` maps set name to
    ``(best accuracy, step)``; ``history`` lists every evaluation.
    """

    def __init__(self, sets, *, every_n_steps: int = 0, every_n_epochs: int = 1, embedding_model="auto",
                 batch_size: int = 64, n_folds: int = 10, flip: bool = True, log_dir=None):
        super().__init__()
        if every_n_steps < 0 or every_n_epochs < 0:
            raise ValueError(f"every_n_steps and every_n_epochs must be >= 0, got {every_n_steps}, {every_n_epochs}")
        if not every_n_steps and not every_n_epochs:
            raise ValueError("VerificationCallback needs every_n_steps > 0 or every_n_epochs > 0")
        if isinstance(sets, dict):
            self._specs = [(str(name), path) for name, path in sets.items()]
        else:
            self._specs = [(None, s) for s in ([sets] if isinstance(sets, (str, Path, VerificationSet)) else sets)]
        if not self._specs:
            raise ValueError("VerificationCallback needs at least one verification set")
        self.every_n_steps = int(every_n_steps)
        self.every_n_epochs = int(every_n_epochs)
        self.embedding_model = embedding_model
        self.batch_size = int(batch_size)
        self.n_folds = int(n_folds)
        self.flip = bool(flip)
        self.log_dir = None if log_dir is None else str(log_dir)
        self.sets: list[VerificationSet] | None = None
        self.best: dict[str, tuple[float, int]] = {}
        self.history: list[dict] = []
        self.latest: dict[str, float] = {}
        self._writer = None
        self._embedder = None
        self._last_step = None
        self._steps_seen = 0

    # -- helpers -----------------------------------------------------------------------------

    def _target_model(self):
        choice = self.embedding_model
        if isinstance(choice, keras.Model):
            return choice
        if choice == "auto":
            backbone = getattr(self.model, "backbone", None)
            return backbone if isinstance(backbone, keras.Model) else self.model
        target = getattr(self.model, str(choice), None)
        if not isinstance(target, keras.Model):
            raise ValueError(f"VerificationCallback: the trained model has no Keras model attribute {choice!r}")
        return target

    def _global_step(self) -> int:
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and getattr(optimizer, "iterations", None) is not None:
            return int(np.asarray(optimizer.iterations))
        return self._steps_seen

    def _load_sets(self, size: int):
        loaded = []
        for name, spec in self._specs:
            if isinstance(spec, VerificationSet):
                loaded.append(spec)
            else:
                loaded.append(load_verification_set(spec, name=name, decode=True, size=size))
        names = [s.name for s in loaded]
        if len(set(names)) != len(names):
            raise ValueError(f"VerificationCallback: duplicate set names {names}; pass a {{name: path}} dict")
        return loaded

    def evaluate(self) -> dict:
        """Evaluates every set now; returns ``{name: VerificationResult}``."""
        import tensorflow as tf

        model = self._target_model()
        if self._embedder is None or self._embedder.model is not model:
            self._embedder = KerasEmbedder(model, batch_size=self.batch_size)
        if self.sets is None:
            self.sets = self._load_sets(self._embedder.input_size[0])
        step = self._global_step()
        results = {}
        for vset in self.sets:
            result = evaluate_set(self._embedder, vset, batch_size=self.batch_size, n_folds=self.n_folds,
                                  flip=self.flip)
            results[vset.name] = result
            best_acc, _ = self.best.get(vset.name, (-1.0, -1))
            if result.accuracy > best_acc:
                self.best[vset.name] = (result.accuracy, step)
            best = self.best[vset.name][0]
            self.latest.update({
                f"{vset.name}_accuracy": result.accuracy,
                f"{vset.name}_accuracy_std": result.accuracy_std,
                f"{vset.name}_xnorm": result.xnorm,
                f"{vset.name}_best_accuracy": best,
            })
            self.history.append({"step": step, "set": vset.name, "accuracy": result.accuracy,
                                 "accuracy_std": result.accuracy_std, "xnorm": result.xnorm, "best_accuracy": best})
            logging.info("[%s][%d] XNorm %.5f  Accuracy-Flip %.5f+-%.5f  Accuracy-Highest %.5f",
                         vset.name, step, result.xnorm, result.accuracy, result.accuracy_std, best)
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            write_scalars(self._writer, {
                f"verification/{name}/{key}": self.latest[f"{name}_{key}"]
                for name in results for key in ("accuracy", "accuracy_std", "xnorm", "best_accuracy")
            }, step)
        self._last_step = step
        return results

    # -- Keras hooks -------------------------------------------------------------------------

    def on_train_batch_end(self, batch, logs=None):
        self._steps_seen += 1
        if not self.every_n_steps:
            return
        step = self._global_step()
        if step % self.every_n_steps == 0 and step != self._last_step:
            self.evaluate()
            if logs is not None:
                logs.update(self.latest)

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0 and self._global_step() != self._last_step:
            self.evaluate()
        if logs is not None and self.latest:
            logs.update(self.latest)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.flush()
