"""Training: margin-head models, distillation, teacher schedules, PyTorch-style SGD, the CLI.

Public names are imported lazily (so ``python -m pocketnet_tf.train`` can configure logging
before TensorFlow loads):

- :class:`MarginModel`, :class:`DistillationModel` (``distiller``)
- :class:`TorchSGD` (``optimizer``), :class:`EpochStepDecay`, :func:`scaled_learning_rate` (``schedules``)
- :class:`TeacherSchedule`, :class:`TeacherScheduleCallback` (``teacher_schedule``)
- :class:`SavedModelTeacher`, :func:`export_savedmodel`, :func:`read_manifest` (``teachers``)
- :class:`ResumableCheckpoint`, :class:`TeacherExporter` (``callbacks``), :func:`fit_epochs` (``loop``)
"""

import importlib

_EXPORTS = {
    "MarginModel": "distiller", "DistillationModel": "distiller",
    "TorchSGD": "optimizer",
    "EpochStepDecay": "schedules", "scaled_learning_rate": "schedules",
    "TeacherSchedule": "teacher_schedule", "TeacherScheduleCallback": "teacher_schedule",
    "SavedModelTeacher": "teachers", "export_savedmodel": "teachers", "read_manifest": "teachers",
    "ResumableCheckpoint": "callbacks", "TeacherExporter": "callbacks", "fit_epochs": "loop",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"pocketnet_tf.train.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'pocketnet_tf.train' has no attribute {name!r}")
