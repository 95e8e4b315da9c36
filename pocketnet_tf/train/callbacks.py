"""Training callbacks: per-epoch teacher export and logging (spec §6.9).

The crash-safe checkpoints (shared with search) live in :mod:`pocketnet_tf.fitting.checkpoints`;
their names are re-exported here, where earlier code imported them from.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
from absl import logging

from pocketnet_tf.eval.callbacks import write_scalars
from pocketnet_tf.fitting.checkpoints import (  # noqa: F401 - re-exported
    STATE_FILE, ResumableCheckpoint, read_checkpoint_state, restore_checkpoint,
)
from pocketnet_tf.fitting.loop import StopAfterEpoch  # noqa: F401 - re-exported
from pocketnet_tf.train import teachers as teachers_lib

# ---------------------------------------------------------------------------------------------
# Teacher export


class TeacherExporter(keras.callbacks.Callback):
    """Exports the backbone as a SavedModel at the end of every epoch and updates the manifest.

    ``<directory>/epoch_<NNN>`` holds the teacher after ``NNN`` completed epochs;
    ``<directory>/manifest.json`` lists them (see :mod:`pocketnet_tf.train.teachers`). Both are
    written atomically; place this callback *before* :class:`ResumableCheckpoint` so an epoch is
    only checkpointed once its teacher is on disk.
    """

    def __init__(self, backbone, directory):
        super().__init__()
        self.backbone = backbone
        self.directory = Path(directory)
        self.manifest_path = self.directory / "manifest.json"
        self._serving = None

    def on_epoch_end(self, epoch, logs=None):
        completed = epoch + 1
        name = f"epoch_{completed:03d}"
        if self._serving is None:
            self._serving = teachers_lib.ServingModule(self.backbone)
        self._serving.save(self.directory / name)
        entries = []
        if self.manifest_path.exists():
            entries = [e for e in teachers_lib.read_manifest(self.manifest_path) if e.epoch < completed]
        entries.append(teachers_lib.ManifestEntry(
            epoch=completed, step=int(self.model.optimizer.iterations.numpy()), path=name,
            embedding_size=int(self.backbone.output_shape[-1]),
            input_shape=[int(v) for v in self.backbone.input_shape[1:]],
        ))
        teachers_lib.write_manifest(self.manifest_path, entries)
        logging.info("teacher epoch %d exported to %s", completed, self.directory / name)


# ---------------------------------------------------------------------------------------------
# Logging


class TrainingLogger(keras.callbacks.Callback):
    """Logs every ``every_steps`` global steps (samples/s, losses, LR, epoch, step, ETA) and
    writes the same scalars to TensorBoard under ``log_dir`` (steps = optimiser iterations).

    The loss values are Keras' running means over the epoch so far.
    """

    def __init__(self, global_batch_size: int, total_steps: int, every_steps: int = 50, log_dir=None):
        super().__init__()
        self.global_batch_size = int(global_batch_size)
        self.total_steps = int(total_steps)
        self.every_steps = max(1, int(every_steps))
        self.log_dir = None if log_dir is None else str(log_dir)
        self._writer = None
        self._t0 = None
        self._s0 = 0

    def on_train_begin(self, logs=None):
        import tensorflow as tf

        if self.log_dir and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._t0 = time.perf_counter()
        self._s0 = int(self.model.optimizer.iterations.numpy())

    def _lr(self, step):
        lr = self.model.optimizer.learning_rate
        return float(lr.numpy() if hasattr(lr, "numpy") else lr)

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every_steps:
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self._s0) * self.global_batch_size / max(elapsed, 1e-9)
        eta = (self.total_steps - step) * self.global_batch_size / max(rate, 1e-9)
        values = {k: float(v) for k, v in (logs or {}).items() if k.endswith("loss")}
        logging.info(
            "step %d/%d  %.1f samples/s  %s  lr %.3g  eta %.0fs", step, self.total_steps, rate,
            "  ".join(f"{k} {v:.4f}" for k, v in values.items()), self._lr(step), eta,
        )
        self._write({**{f"train/{k}": v for k, v in values.items()}, "train/lr": self._lr(step),
                     "train/samples_per_s": rate}, step)

    def on_epoch_end(self, epoch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float)) or hasattr(v, "__float__")}
        logging.info("epoch %d done (step %d): %s", epoch + 1, step,
                     "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
        self._write({f"epoch/{k}": v for k, v in values.items()}, step)

    def _write(self, scalars, step):
        if self._writer is not None:
            write_scalars(self._writer, scalars, step)
