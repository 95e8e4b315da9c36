"""The divergence guard: a non-finite loss, gradient or weight stops a run before anything good
is overwritten.

Three pieces work together:

* the train step (:meth:`pocketnet_tf.train.distiller.MarginModel.train_step`) checks the loss
  and the global gradient norm with :func:`finite_step`; a non-finite step applies no update and
  reports a NaN loss, so the step's logs carry the news out of the compiled function;
* :class:`DivergenceGuard`, the first callback of a run, raises :class:`DivergenceError` at the
  end of the first batch whose logged losses are not finite — an exception (not
  ``stop_training``) so that no later callback runs: no checkpoint, no teacher export, no epoch-end
  evaluation, no ``student.keras``;
* :func:`check_finite_weights`, called before every checkpoint is written, so a non-finite model
  is never saved (and so never rotates a finite checkpoint away).

The commands turn :class:`DivergenceError` into exit status :data:`EXIT_DIVERGED` and record
``"status": "diverged"`` in ``results.json``; ``--resume`` then restarts from the last checkpoint,
which is always finite.
"""

from __future__ import annotations

import math

import keras
import numpy as np

EXIT_DIVERGED = 3


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss, gradient or weight (the message says which and where)."""


def finite_step(loss, gradients):
    """``True`` (a scalar bool tensor) when ``loss`` and the global norm of ``gradients`` are finite,
    agreed across replicas: one replica's overflow skips the update on all of them, so the
    gradient all-reduce inside ``apply_gradients`` is entered by every replica or by none."""
    import tensorflow as tf

    gradients = [tf.cast(g, tf.float32) for g in gradients if g is not None]
    norm = tf.linalg.global_norm(gradients) if gradients else tf.constant(0.0)
    bad = tf.cast(tf.logical_not(tf.math.is_finite(tf.cast(loss, tf.float32)) & tf.math.is_finite(norm)), tf.float32)
    context = tf.distribute.get_replica_context()
    if context is not None:
        bad = context.all_reduce(tf.distribute.ReduceOp.SUM, bad)
    return tf.equal(bad, 0.0)


def first_non_finite(variables):
    """The first of ``variables`` (Keras or TF) holding a NaN or infinite value, else ``None``."""
    for variable in variables:
        for value in _local_values(variable):
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                return variable
    return None


def _local_values(variable) -> list:
    """The variable's value, or each replica's value of a per-replica variable (a Partial FC centre
    shard: ON_READ without aggregation, which cannot be read as one value across replicas)."""
    import tensorflow as tf

    inner = getattr(variable, "value", variable)
    if isinstance(inner, tf.distribute.DistributedValues) and getattr(inner, "aggregation", None) == (
            tf.VariableAggregation.NONE) and getattr(inner, "synchronization", None) == tf.VariableSynchronization.ON_READ:
        return [np.asarray(v.numpy()) for v in inner.values]
    return [np.asarray(keras.ops.convert_to_numpy(variable))]


def check_finite_weights(model, where: str) -> None:
    """Raises :class:`DivergenceError` if any weight of ``model`` is NaN or infinite."""
    weight = first_non_finite(model.weights)
    if weight is not None:
        raise DivergenceError(f"{where}: weight {weight.path} holds non-finite values; not saved")


class DivergenceGuard(keras.callbacks.Callback):
    """Raises :class:`DivergenceError` after the first step whose logged losses are not finite.

    Put it first in the callback list: callbacks run in order, and the exception keeps every
    later one (checkpoints, exports) from seeing the diverged model.

    Args:
      keys: the logged values to check (default: every key ending in ``loss``).
    """

    def __init__(self, keys=None):
        super().__init__()
        self.keys = None if keys is None else tuple(keys)

    def on_train_batch_end(self, batch, logs=None):
        bad = {}
        for key, value in (logs or {}).items():
            if (self.keys is None and key.endswith("loss")) or (self.keys is not None and key in self.keys):
                number = float(np.asarray(value).reshape(-1)[0])
                if not math.isfinite(number):
                    bad[key] = number
        if bad:
            step = int(self.model.optimizer.iterations.numpy()) if self.model.optimizer is not None else batch
            values = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            raise DivergenceError(
                f"training diverged at global step {step}: {values} (a non-finite loss or gradient); stopped "
                "before saving anything, the newest checkpoint and saved model are the last good ones (lower the "
                "learning rate, then --resume)")
