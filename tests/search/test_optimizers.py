"""The alpha optimiser (PyTorch Adam) and the weights' per-epoch cosine schedule."""

import math

import keras
import numpy as np
import pytest

from pocketnet_tf.search.optimizers import TorchAdam
from pocketnet_tf.search.schedule import CosineEpochSchedule, cosine_lr
from tests import helpers


def _torch_adam_reference(w, grads, lrs, b1, b2, eps, wd):
    """torch.optim.Adam (amsgrad=False), written out."""
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, (g, lr) in enumerate(zip(grads, lrs), start=1):
        d = g + wd * w
        m = b1 * m + (1 - b1) * d
        v = b2 * v + (1 - b2) * d * d
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return w


def test_torch_adam_matches_pytorch_rule_with_coupled_decay():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 8))
    grads = [rng.normal(scale=s, size=(3, 8)) for s in (1.0, 0.01, 3.0, 1e-4)]
    lrs = [1.2e-3, 1.2e-3, 5e-2, 5e-2]
    var = keras.Variable(w0.astype(np.float64), dtype="float64")
    opt = TorchAdam(1.2e-3, beta_1=0.5, beta_2=0.999, coupled_weight_decay=1e-3)
    for g, lr in zip(grads, lrs):
        opt.learning_rate = lr
        opt.apply([g], [var])
    expected = _torch_adam_reference(w0, grads, lrs, 0.5, 0.999, 1e-8, 1e-3)
    # float64 variables; Keras keeps the learning rate as float32 (relative error < 6e-8 per step).
    np.testing.assert_allclose(var.numpy(), expected, rtol=0, atol=5e-9)
    # Keras' own Adam (decoupled decay, epsilon on sqrt(v)) would land elsewhere.
    other = keras.Variable(w0.astype(np.float64), dtype="float64")
    keras_adam = keras.optimizers.Adam(1.2e-3, beta_1=0.5, beta_2=0.999, epsilon=1e-8, weight_decay=1e-3)
    for g, lr in zip(grads, lrs):
        keras_adam.learning_rate = lr
        keras_adam.apply([g], [other])
    assert np.abs(other.numpy() - expected).max() > 1e-6


def test_torch_adam_config_and_bad_arguments():
    opt = TorchAdam(2e-3, beta_1=0.5, coupled_weight_decay=1e-3)
    config = opt.get_config()
    assert (config["beta_1"], config["beta_2"], config["epsilon"], config["coupled_weight_decay"]) == (0.5, 0.999, 1e-8, 1e-3)
    again = TorchAdam.from_config(config)
    assert again.get_config() == config
    with pytest.raises(ValueError, match=r"beta_1 must be a number in \[0, 1\), received 1.0"):
        TorchAdam(beta_1=1.0)
    with pytest.raises(ValueError, match="coupled_weight_decay must be a number >= 0, received -1"):
        TorchAdam(coupled_weight_decay=-1)


def test_cosine_schedule_is_pytorch_cosine_annealing_per_epoch():
    # Closed form of CosineAnnealingLR(T_max=50, eta_min=0.004) from 0.1, stepped per epoch.
    assert cosine_lr(0, 50, 0.1, 0.004) == pytest.approx(0.1)
    assert cosine_lr(25, 50, 0.1, 0.004) == pytest.approx(0.052)
    assert cosine_lr(49, 50, 0.1, 0.004) == pytest.approx(0.004 + 0.096 * (1 + math.cos(math.pi * 49 / 50)) / 2)
    # PyTorch's recursive form gives the same numbers.
    lr, base, low, T = 0.1, 0.1, 0.004, 50
    for epoch in range(1, 50):
        lr = low + (lr - low) * (1 + math.cos(math.pi * epoch / T)) / (1 + math.cos(math.pi * (epoch - 1) / T))
        assert cosine_lr(epoch, T, base, low) == pytest.approx(lr, rel=1e-9)
    schedule = CosineEpochSchedule(0.1, 0.004, epochs=50, steps_per_epoch=7)
    got = [float(schedule(step)) for step in (0, 6, 7, 13, 14, 7 * 49 + 6)]
    want = [cosine_lr(e, 50, 0.1, 0.004) for e in (0, 0, 1, 1, 2, 49)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert CosineEpochSchedule.from_config(schedule.get_config()).get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="epochs and steps_per_epoch must be >= 1, received 0, 7"):
        CosineEpochSchedule(0.1, 0.004, 0, 7)
