"""Former home of the divergence guard, now :mod:`pocketnet_tf.fitting.guard` (shared by search
and training); kept so code importing ``pocketnet_tf.train.guard`` keeps working."""

from pocketnet_tf.fitting.guard import (  # noqa: F401 - re-exported
    EXIT_DIVERGED, DivergenceError, DivergenceGuard, check_finite_weights, finite_step, first_non_finite,
)
