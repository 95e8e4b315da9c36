"""The search's weight learning rate: cosine annealing stepped once per epoch (spec §2.1)."""

from __future__ import annotations

import math

import keras
from keras import ops


def cosine_lr(epoch: int, epochs: int, base_lr: float, min_lr: float) -> float:
    """``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs, eta_min=min_lr)`` after
    ``epoch`` scheduler steps: ``min + (base - min) * (1 + cos(pi * epoch / epochs)) / 2``."""
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs)) / 2.0


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class CosineEpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """:func:`cosine_lr` of the epoch ``step // steps_per_epoch`` (constant within an epoch).

    A function of the optimiser's iteration counter, so a run resumed from a checkpoint continues
    with the right rate, and the architect's xi (the current rate) follows the same schedule.

    Args:
      base_lr: rate of epoch 0 (0.1).
      min_lr: ``eta_min`` (0.004).
      epochs: ``T_max``, the number of search epochs (50).
      steps_per_epoch: optimiser steps per epoch.
    """

    def __init__(self, base_lr, min_lr, epochs, steps_per_epoch):
        if not (epochs >= 1 and steps_per_epoch >= 1):
            raise ValueError(
                f"CosineEpochSchedule: epochs and steps_per_epoch must be >= 1, received {epochs}, {steps_per_epoch}"
            )
        self.base_lr = float(base_lr)
        self.min_lr = float(min_lr)
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)

    def __call__(self, step):
        epoch = ops.cast(ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch), "float32")
        cosine = 0.5 * (1.0 + ops.cos(math.pi * epoch / float(self.epochs)))
        return self.min_lr + (self.base_lr - self.min_lr) * cosine

    def get_config(self):
        return {
            "base_lr": self.base_lr, "min_lr": self.min_lr, "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
        }
