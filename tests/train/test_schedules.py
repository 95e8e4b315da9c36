"""Per-epoch step decay (the original's LambdaLR) and LR scaling (spec §6.5)."""

import keras
import numpy as np
import pytest

from pocketnet_tf.train.schedules import (
    MS1MV2_MILESTONES, EpochStepDecay, epoch_factor, scaled_learning_rate,
)


def test_ms1mv2_schedule_table():
    # Spec §6.5: 0.1 for epochs 0-6, 0.01 for 7-12, 1e-3 for 13-18, 1e-4 for 19-23, 1e-5 for 24-25.
    expected = [0.1] * 7 + [0.01] * 6 + [1e-3] * 6 + [1e-4] * 5 + [1e-5] * 2
    spe = 11372
    schedule = EpochStepDecay(0.1, spe, MS1MV2_MILESTONES)
    steps = np.array([e * spe + k for e in range(26) for k in (0, spe - 1)])
    got = np.asarray(schedule(steps))
    np.testing.assert_allclose(got, np.repeat(expected, 2), rtol=1e-6)
    assert [0.1 * epoch_factor(e, MS1MV2_MILESTONES) for e in range(26)] == pytest.approx(expected, rel=1e-12)


def test_lr_scaling_and_config_round_trip():
    assert scaled_learning_rate(0.1, 512) == pytest.approx(0.1)
    assert scaled_learning_rate(0.1, 128) == pytest.approx(0.025)  # spec §9.19: one GPU, batch 128
    schedule = EpochStepDecay(0.05, 7, [20, 28, 32], gamma=0.5)
    again = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert again.get_config() == schedule.get_config()
    assert float(again(19 * 7)) == pytest.approx(0.025)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps_per_epoch": 0}, "steps_per_epoch must be >= 1"),
    ({"steps_per_epoch": 5, "milestones": [5, 3]}, "milestones must be increasing"),
])
def test_bad_schedule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EpochStepDecay(0.1, **kwargs)
