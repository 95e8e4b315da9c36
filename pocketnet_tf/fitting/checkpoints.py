"""Crash-safe checkpoints and the exact resume point, shared by search and training (spec §6.9).

Resume model: the optimiser's iteration counter is the one source of truth. Every epoch has
exactly ``steps_per_epoch`` steps (the runners make each epoch's dataset that long), so the
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

from pocketnet_tf.fitting.guard import DivergenceError, check_finite_weights
from pocketnet_tf.io_utils import atomic_path, write_json_atomic

STATE_FILE = "state.json"


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
