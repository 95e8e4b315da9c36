"""Numeric precision of training and search: ``--precision=float32|mixed_bfloat16|mixed_float16``.

A precision is a Keras dtype policy applied while the network is *built*: under
``mixed_bfloat16`` / ``mixed_float16`` every layer keeps float32 variables and computes in the
16-bit type. What stays float32 whatever the policy, and why:

- the margin head (its cosine, margin and ``s``-scaled logits: ``s·cos`` = 64 carries 8 bits of
  mantissa in bfloat16, an error of 0.25 on a logit), the softmax cross-entropy and the KD MSE
  (``keras.losses.Loss`` computes in float32, the embeddings are cast before normalising);
- BatchNorm statistics (the fused kernel takes 16-bit activations with float32 scale, offset,
  mean and variance; see :class:`pocketnet_tf.layers.common.BatchNormalization`);
- all variables, so checkpoints hold float32 weights and :func:`float32_copy` saves a
  ``student.keras`` that ``convert`` and ``evaluate`` load as any float32 model.

``mixed_float16`` also needs loss scaling (fp16 gradients underflow below 6e-8): the
:class:`~pocketnet_tf.fitting.torch_sgd.TorchSGD` built by :func:`optimizer_options` scales the loss
dynamically and skips steps whose gradient overflowed.
"""

from __future__ import annotations

import contextlib

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def precision_scope(precision: str):
    """Layers built inside use the dtype policy ``precision``; the previous policy is restored."""
    import keras

    check_precision(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def needs_loss_scaling(precision: str) -> bool:
    """float16 (5 exponent bits) needs a loss scale; bfloat16 has float32's exponent range."""
    return check_precision(precision) == "mixed_float16"


def optimizer_options(precision: str) -> dict:
    """Extra :class:`~pocketnet_tf.fitting.torch_sgd.TorchSGD` arguments for ``precision``."""
    return {"dynamic_loss_scale": needs_loss_scaling(precision)}


def _float32_config(value):
    """``value`` (a serialised Keras object) with every mixed dtype policy replaced by float32."""
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("class_name") == "DTypePolicy" and str(value.get("config", {}).get("name", "")).startswith("mixed_"):
        return {**value, "config": {**value["config"], "name": "float32"}}
    return {k: _float32_config(v) for k, v in value.items()}


def float32_copy(model):
    """A float32-policy copy of ``model`` with its (float32) weights, for saving and export.

    A model built under a mixed policy computes in 16 bits wherever it is loaded; the copy is
    rebuilt from the model's config under the float32 policy (layers created by constructors take
    the global policy, serialised per-layer policies are rewritten), then given the same weights.
    A float32 model is returned as it is.
    """
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers()):
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    with precision_scope("float32"):
        copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy
