"""The alpha optimiser with PyTorch's update rule (spec §2.1: Adam, lr 1.2e-3, betas (0.5, 0.999),
weight decay 1e-3).

Keras 3's Adam differs from ``torch.optim.Adam`` in two ways: its ``weight_decay`` is decoupled
(AdamW style) whereas PyTorch adds ``lambda * alpha`` to the gradient before the moment
estimates, and it adds epsilon to ``sqrt(v)`` with the bias corrections folded into the step
size where PyTorch adds it to ``sqrt(v_hat)``. :class:`TorchAdam` implements the PyTorch rule
inside Keras' optimiser machinery, so it keeps working under ``tf.distribute`` (gradients are
summed over replicas before ``update_step`` runs, so the decay term is added exactly once).

The weight optimiser is :class:`pocketnet_tf.fitting.torch_sgd.TorchSGD` (PyTorch SGD with
coupled weight decay and global-norm clipping after the cross-replica sum), shared with training.
"""

from __future__ import annotations

import keras
from keras import ops


def _check_rate(owner: str, name: str, value: float, upper: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
        upper is not None and value >= upper
    ):
        bound = f"in [0, {upper:g})" if upper is not None else ">= 0"
        raise ValueError(f"{owner}: {name} must be a number {bound}, received {value!r}")
    return float(value)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class TorchAdam(keras.optimizers.Optimizer):
    """Adam with coupled (L2) weight decay, exactly as ``torch.optim.Adam`` (``amsgrad=False``).

    Per variable, with step count t = 1, 2, ...::

        d = g + coupled_weight_decay * w
        m = beta_1 * m + (1 - beta_1) * d
        v = beta_2 * v + (1 - beta_2) * d**2
        w = w - learning_rate * (m / (1 - beta_1**t)) / (sqrt(v / (1 - beta_2**t)) + epsilon)

    Args:
      learning_rate: float or schedule.
      beta_1, beta_2: moment decay rates.
      epsilon: PyTorch's ``eps`` (added to the bias-corrected root).
      coupled_weight_decay: PyTorch ``weight_decay``.
      name: optimiser name.
    """

    def __init__(
        self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, coupled_weight_decay=0.0,
        name="torch_adam", **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        owner = type(self).__name__
        self.beta_1 = _check_rate(owner, "beta_1", beta_1, 1.0)
        self.beta_2 = _check_rate(owner, "beta_2", beta_2, 1.0)
        self.epsilon = _check_rate(owner, "epsilon", epsilon)
        self.coupled_weight_decay = _check_rate(owner, "coupled_weight_decay", coupled_weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.first_moments, self.second_moments = self.add_optimizer_variables(
            variables, ["first_moment", "second_moment"]
        )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        d = ops.cast(gradient, dtype)
        if self.coupled_weight_decay:
            d = d + ops.cast(self.coupled_weight_decay, dtype) * variable
        index = self._get_variable_index(variable)
        m, v = self.first_moments[index], self.second_moments[index]
        b1, b2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        self.assign(m, b1 * m + (1.0 - b1) * d)
        self.assign(v, b2 * v + (1.0 - b2) * ops.square(d))
        m_hat = m / (1.0 - ops.power(b1, t))
        v_hat = v / (1.0 - ops.power(b2, t))
        self.assign_sub(variable, lr * m_hat / (ops.sqrt(v_hat) + ops.cast(self.epsilon, dtype)))

    def get_config(self):
        config = super().get_config()
        config.update(
            beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
            coupled_weight_decay=self.coupled_weight_decay,
        )
        return config
