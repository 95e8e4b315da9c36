"""Which teacher SavedModel teaches which student epoch (spec §6.6, §6.7).

- Single-teacher KD: one SavedModel for every epoch (the original: the final teacher checkpoint).
- Multi-step KD: student epoch ``e`` (0-based) learns from the teacher saved at the end of
  teacher epoch ``e + 1`` (policy ``per_epoch``, the original). Policy ``spread`` stretches a
  teacher run of ``T`` epochs over ``S`` student epochs: epoch ``e`` gets teacher epoch
  ``ceil((e + 1)·T / S)`` (identical to ``per_epoch`` when ``T == S``).

The original silently trained with a random teacher when a checkpoint was missing (KD) or ended
training early with exit code 0 (multi-step KD, spec §9.4). Here :meth:`TeacherSchedule.validate`
opens every SavedModel before the first step and raises, naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
from absl import logging

from pocketnet_tf.train.teachers import SavedModelTeacher, TeacherError, check_finite_output, read_manifest

POLICIES = ("per_epoch", "spread")


@dataclass(frozen=True)
class TeacherSchedule:
    """``paths[e]`` is the teacher SavedModel of student epoch ``e``."""

    paths: tuple

    def __post_init__(self):
        if not self.paths:
            raise ValueError("TeacherSchedule: no teacher SavedModels given")
        object.__setattr__(self, "paths", tuple(Path(p) for p in self.paths))

    @property
    def epochs(self) -> int:
        return len(self.paths)

    def path_for(self, epoch: int) -> Path:
        if not 0 <= epoch < len(self.paths):
            raise ValueError(f"TeacherSchedule: no teacher for student epoch {epoch} (schedule covers 0..{len(self.paths) - 1})")
        return self.paths[epoch]

    def unique_paths(self) -> list[Path]:
        return list(dict.fromkeys(self.paths))

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def single(cls, path, epochs: int) -> "TeacherSchedule":
        """The same teacher for all ``epochs`` student epochs."""
        return cls(tuple([Path(path)] * int(epochs)))

    @classmethod
    def from_paths(cls, paths, epochs: int, policy: str = "per_epoch") -> "TeacherSchedule":
        """An explicit, ordered list of teacher checkpoints (earliest first) mapped onto ``epochs``.

        ``per_epoch``: epoch ``e`` uses ``paths[e]`` (needs at least ``epochs`` paths).
        ``spread``: epoch ``e`` uses ``paths[ceil((e + 1)·T / S) - 1]``.
        """
        paths = [Path(p) for p in paths]
        return cls(tuple(paths[i - 1] for i in _teacher_epochs(len(paths), int(epochs), policy, source="teacher list")))

    @classmethod
    def from_manifest(cls, manifest, epochs: int, policy: str = "per_epoch") -> "TeacherSchedule":
        """Multi-step schedule from a teacher run's manifest (entries by completed epoch 1..T)."""
        manifest = Path(manifest)
        entries = {e.epoch: e for e in read_manifest(manifest)}
        if not entries:
            raise TeacherError(f"{manifest}: the manifest lists no teacher SavedModels")
        last = max(entries)
        out = []
        for teacher_epoch in _teacher_epochs(last, int(epochs), policy, source=str(manifest)):
            if teacher_epoch not in entries:
                raise TeacherError(
                    f"{manifest}: no teacher checkpoint for teacher epoch {teacher_epoch} "
                    f"(manifest has epochs {sorted(entries)})"
                )
            out.append(entries[teacher_epoch].resolve(manifest.parent))
        return cls(tuple(out))

    @classmethod
    def final_from_manifest(cls, manifest, epochs: int) -> "TeacherSchedule":
        """Single-teacher KD with the last checkpoint of a teacher run."""
        manifest = Path(manifest)
        entries = read_manifest(manifest)
        if not entries:
            raise TeacherError(f"{manifest}: the manifest lists no teacher SavedModels")
        return cls.single(entries[-1].resolve(manifest.parent), epochs)

    # -- validation -----------------------------------------------------------------------------

    def validate(self, input_shape, embedding_size) -> dict:
        """Opens every SavedModel once and checks it fits the student; raises on the first problem.

        Returns ``{path: structure}`` for logging; nothing stays loaded.
        """
        structures = {}
        for path in self.unique_paths():
            teacher = SavedModelTeacher(path)
            teacher.validate(input_shape, embedding_size)
            check_finite_output(teacher, input_shape, str(path))  # outside any strategy scope
            structures[path] = len(teacher.variables)
            del teacher
        return structures


def _teacher_epochs(available: int, epochs: int, policy: str, *, source: str) -> list[int]:
    """1-based teacher epochs used by student epochs 0..epochs-1."""
    if epochs < 1:
        raise ValueError(f"TeacherSchedule: epochs must be >= 1, received {epochs}")
    if policy == "per_epoch":
        if available < epochs:
            raise TeacherError(
                f"{source}: multi-step KD over {epochs} student epochs needs teacher checkpoints for epochs "
                f"1..{epochs}, only {available} available (use policy 'spread' to stretch them)"
            )
        return [e + 1 for e in range(epochs)]
    if policy == "spread":
        return [max(1, -(-(e + 1) * available // epochs)) for e in range(epochs)]
    raise ValueError(f"TeacherSchedule: unknown policy {policy!r}; expected one of {POLICIES}")


class TeacherScheduleCallback(keras.callbacks.Callback):
    """Keras callback that gives each student epoch its scheduled teacher.

    Before training it validates the whole schedule (unless already done). At the start of each
    epoch, if the scheduled SavedModel differs from the active one, it loads it and **assigns its
    weights into the active teacher's variables** — the variables the compiled train step
    captured — so the step sees the new teacher with no retrace and nothing accumulates. Only if
    the two checkpoints have different variables (a different architecture) does it swap the
    teacher object and force a retrace of the train function.

    ``switches`` records ``(epoch, path, "initial" | "assigned" | "retraced")``.
    """

    def __init__(self, schedule: TeacherSchedule, validated: bool = False):
        super().__init__()
        self.schedule = schedule
        self.validated = validated
        self.switches = []

    def on_train_begin(self, logs=None):
        if not self.validated:
            self.schedule.validate(self.model.input_image_shape, self.model.embedding_size)
            self.validated = True

    def on_epoch_begin(self, epoch, logs=None):
        path = Path(self.schedule.path_for(epoch))
        current = self.model.teacher
        if current is not None and current.path is not None and Path(current.path) == path:
            how = "kept"
        else:
            new = SavedModelTeacher(path)
            new.validate(self.model.input_image_shape, self.model.embedding_size)
            if isinstance(current, SavedModelTeacher) and current.compatible_with(new):
                current.assign_from(new)
                how = "assigned"
            else:
                self.model.set_teacher(new, retrace=True)
                how = "retraced" if current is not None else "initial"
            del new
        self.switches.append((epoch, str(path), how))
        logging.info("student epoch %d: teacher %s (%s)", epoch + 1, path, how)
