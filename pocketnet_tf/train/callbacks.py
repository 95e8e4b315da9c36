"""Training callbacks: crash-safe checkpoints, per-epoch teacher export, logging (spec §6.9).

Resume model: the optimiser's iteration counter is the one source of truth. Every epoch has
exactly ``steps_per_epoch`` steps (the runner makes each epoch's dataset that long), so the
global step ``g`` restored from a checkpoint means "epoch ``g // steps_per_epoch``, step
``g % steps_per_epoch`` within it"; the learning-rate schedule and the per-epoch data order are
functions of it too, so a resumed run continues exactly where the checkpoint was taken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
from absl import logging

from pocketnet_tf.io_utils import atomic_path, write_json_atomic
from pocketnet_tf.train import teachers as teachers_lib
from pocketnet_tf.train.guard import DivergenceError, check_finite_weights
from pocketnet_tf.eval.callbacks import write_scalars

STATE_FILE = "state.json"


# ---------------------------------------------------------------------------------------------
# Checkpoints


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves model + optimiser state atomically at every epoch end and every ``every_steps`` steps.

    Layout of ``directory``: ``ckpt-<global step>.weights.h5`` files and ``state.json`` naming
    the newest complete one. A weights file is written to a temporary name and renamed, then
    ``state.json`` is replaced (also by rename), then older weights files beyond ``keep`` are
    deleted. A SIGKILL at any moment therefore leaves ``state.json`` pointing at a complete
    file: at worst the run repeats the steps since that checkpoint.

    Args:
      directory: checkpoint directory (created).
      steps_per_epoch: steps in every epoch (recorded for the resume arithmetic).
      every_steps: also save every this many global steps (0: epoch ends only).
      keep: how many weights files to keep (>= 1).
    """

    def __init__(self, directory, steps_per_epoch: int, every_steps: int = 0, keep: int = 2):
        super().__init__()
        self.directory = Path(directory)
        self.steps_per_epoch = int(steps_per_epoch)
        self.every_steps = int(every_steps)
        self.keep = max(1, int(keep))

    def _global_step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def save(self) -> Path:
        step = self._global_step()
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"ckpt-{step:010d}.weights.h5"
        target = self.directory / name
        if not target.exists():
            # Never write (and so never rotate a good checkpoint away for) a non-finite model.
            check_finite_weights(self.model, f"checkpoint at global step {step}")
            with atomic_path(target) as tmp:
                self.model.save_weights(str(tmp))
        write_json_atomic(self.directory / STATE_FILE, {
            "weights": name,
            "global_step": step,
            "epoch": step // self.steps_per_epoch,
            "step_in_epoch": step % self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "time": time.time(),
        })
        old = sorted(self.directory.glob("ckpt-*.weights.h5"))
        for path in old[: -self.keep]:
            if path.name != name:
                path.unlink(missing_ok=True)
        return target

    def on_train_batch_end(self, batch, logs=None):
        step = self._global_step()
        # An epoch's last step is saved by on_epoch_end, after the epoch-end callbacks before this
        # one (teacher export): saving it here would let a kill during that export skip it on resume.
        if self.every_steps and step % self.every_steps == 0 and step % self.steps_per_epoch:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()


def read_checkpoint_state(directory) -> dict | None:
    """The newest checkpoint's state (``None`` if there is none); checks the weights file exists.

    A ``state.json`` that is unreadable or names a missing file falls back to the newest
    ``ckpt-*.weights.h5`` (logged; its steps per epoch then unknown); with no such file either it
    is an error.
    """
    directory = Path(directory)
    state_path = directory / STATE_FILE
    files = sorted(directory.glob("ckpt-*.weights.h5")) if directory.is_dir() else []
    if not state_path.exists():
        return _state_from_file(files[-1], f"{state_path} is missing") if files else None
    try:
        state = json.loads(state_path.read_text())
        weights = directory / state["weights"]
        int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        if files:
            return _state_from_file(files[-1], f"{state_path} is unreadable ({err!r})")
        raise ValueError(f"{state_path}: unreadable checkpoint state ({err!r})") from err
    if not weights.is_file():
        if files:
            return _state_from_file(files[-1], f"{state_path} names {weights.name}, which does not exist")
        raise FileNotFoundError(f"{state_path}: names {weights.name}, which does not exist")
    state["weights_path"] = str(weights)
    return state


def _step_of(path: Path) -> int | None:
    """The global step in a ``ckpt-<step>.weights.h5`` name (``None`` for another name)."""
    digits = path.name[len("ckpt-"):-len(".weights.h5")]
    return int(digits) if digits.isdigit() else None


def _state_from_file(path: Path, why: str) -> dict:
    step = _step_of(path)
    if step is None:
        raise ValueError(f"{path}: not a checkpoint name ckpt-<step>.weights.h5 ({why})")
    logging.warning("%s; using the newest checkpoint file %s", why, path)
    return {"weights": path.name, "global_step": step, "weights_path": str(path)}


def restore_checkpoint(model, directory, steps_per_epoch: int, state: dict | None = None) -> int:
    """Loads the newest intact checkpoint into ``model`` (weights and optimiser); returns its
    global step.

    The file ``state.json`` names is tried first, then the older ``ckpt-*.weights.h5`` files,
    newest first: a checkpoint that cannot be loaded (truncated, corrupt, another architecture)
    is logged and skipped. Raises ``ValueError`` listing every failure when none loads. Returns 0
    (and changes nothing) when ``directory`` holds no checkpoint. ``state``: the caller's
    :func:`read_checkpoint_state`, whose ``weights_path`` is set to the file actually restored.
    """
    state = read_checkpoint_state(directory) if state is None else state
    if state is None:
        return 0
    if int(state.get("steps_per_epoch", steps_per_epoch)) != int(steps_per_epoch):
        raise ValueError(
            f"{Path(directory) / STATE_FILE}: checkpoint was written with {state['steps_per_epoch']} steps per epoch, "
            f"this run has {steps_per_epoch} (changed batch size or dataset?)"
        )
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    failures = []
    for path, expected in _checkpoint_candidates(Path(directory), state):
        try:
            step = _load_checkpoint(model, path, expected)
        except (ValueError, DivergenceError) as err:
            logging.warning("--resume: skipping checkpoint %s: %s", path, err)
            failures.append(str(err))
            continue
        if failures:
            logging.warning("--resume: fell back to the newest intact checkpoint %s (global step %d)", path, step)
        state["weights_path"] = str(path)
        return step
    raise ValueError(f"{directory}: no checkpoint could be restored: " + "; ".join(failures))


def _checkpoint_candidates(directory: Path, state: dict) -> list:
    """``[(weights file, its global step)]``: the state's own file, then older ones, newest first."""
    named = Path(state["weights_path"])
    out = [(named, int(state["global_step"]))]
    for path in sorted(directory.glob("ckpt-*.weights.h5"), reverse=True):
        step = _step_of(path)
        if step is not None and path != named and step < int(state["global_step"]):
            out.append((path, step))
    return out


def _load_checkpoint(model, path: Path, expected_step: int) -> int:
    try:
        model.load_weights(str(path))
    except Exception as err:  # h5py / Keras raise several types
        first_line = (str(err).strip().splitlines() or [""])[0][:300]  # Keras may append a layer listing
        raise ValueError(f"{path}: cannot restore checkpoint ({type(err).__name__}: {first_line})") from err
    step = int(model.optimizer.iterations.numpy())
    if step != int(expected_step):
        raise ValueError(f"{path}: optimiser step {step} != recorded step {expected_step}")
    check_finite_weights(model, str(path))
    return step


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


class StopAfterEpoch(keras.callbacks.Callback):
    """Ends ``fit`` after the current epoch (used for the shortened first epoch of a resume)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True
