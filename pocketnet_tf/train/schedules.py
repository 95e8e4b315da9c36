"""Learning-rate schedules (spec §6.5).

The original steps a ``LambdaLR`` once at the end of every epoch, with
``factor(e) = gamma ** #{m in milestones : m - 1 <= e}`` for the 0-based epoch ``e`` (milestones
8, 14, 20, 25 on MS1MV2: LR 0.1 for epochs 0-6, 0.01 for 7-12, 1e-3 for 13-18, 1e-4 for 19-23,
1e-5 for 24-25). :class:`EpochStepDecay` computes the same factor from the optimiser's iteration
counter (``epoch = step // steps_per_epoch``), so a resumed run gets the right LR with no
scheduler state to restore.
"""

from __future__ import annotations

import keras
from keras import ops

#: Milestones of the MS1MV2 configs (26 epochs).
MS1MV2_MILESTONES = (8, 14, 20, 25)
#: Milestones of the CASIA-WebFace (``webface``) config branch (34 epochs).
WEBFACE_MILESTONES = (20, 28, 32)


def scaled_learning_rate(base_lr: float, global_batch_size: int, reference_batch_size: int = 512) -> float:
    """``lr = base_lr / reference · global batch`` (the original: 0.1 / 512 · 128 · 4 = 0.1)."""
    if global_batch_size < 1 or reference_batch_size < 1:
        raise ValueError(
            f"batch sizes must be >= 1, received global={global_batch_size}, reference={reference_batch_size}"
        )
    return float(base_lr) * global_batch_size / reference_batch_size


def epoch_factor(epoch: int, milestones, gamma: float = 0.1) -> float:
    """The original's LambdaLR factor for 0-based ``epoch`` (pure Python, for logs and tests)."""
    return float(gamma) ** sum(1 for m in milestones if m - 1 <= epoch)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class EpochStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Step decay by whole epochs, driven by the global step.

    Args:
      base_lr: learning rate of epoch 0 (already scaled by the batch size).
      steps_per_epoch: optimiser steps per epoch (> 0).
      milestones: 1-based epochs; the LR is multiplied by ``gamma`` from 0-based epoch
        ``milestone - 1`` on (the original's ``m - 1 <= e``).
      gamma: the decay factor (0.1).
    """

    def __init__(self, base_lr, steps_per_epoch, milestones=MS1MV2_MILESTONES, gamma=0.1):
        if int(steps_per_epoch) < 1:
            raise ValueError(f"EpochStepDecay: steps_per_epoch must be >= 1, received {steps_per_epoch!r}")
        milestones = [int(m) for m in milestones]
        if any(m < 1 for m in milestones) or milestones != sorted(milestones):
            raise ValueError(f"EpochStepDecay: milestones must be increasing ints >= 1, received {milestones}")
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.milestones = milestones
        self.gamma = float(gamma)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch)
        drops = ops.zeros((), "float32")
        for m in self.milestones:
            drops = drops + ops.cast(ops.greater_equal(epoch, m - 1), "float32")
        return self.base_lr * ops.power(ops.cast(self.gamma, "float32"), drops)

    def get_config(self):
        return {
            "base_lr": self.base_lr, "steps_per_epoch": self.steps_per_epoch,
            "milestones": list(self.milestones), "gamma": self.gamma,
        }
