"""Additive-margin classification heads for face recognition training (spec §6.4).

Both heads own a class-centre matrix ``kernel`` of shape ``[embedding_size, num_classes]``
(initialised N(0, 0.01²), no bias, as in the original) and turn a batch of embeddings plus their
labels into scaled logits for a softmax cross-entropy:

- :class:`ArcMarginHead` (ArcFace, Deng et al. 2019): the target logit becomes ``s·cos(θ + m)``.
- :class:`CosMarginHead` (CosFace, Wang et al. 2018): the target logit becomes ``s·(cos θ − m)``.

Without labels the heads return ``s·cos θ`` (plain normalised logits), so a trained head can be
used to classify.
"""

from __future__ import annotations

import math

import keras
from keras import ops

#: Added to norms before dividing. The original divides without an epsilon (a zero embedding or
#: class column gives NaN); ``F.normalize`` in its training loop uses the same 1e-12.
NORM_EPSILON = 1e-12
#: Cosines are clipped to [-1 + CLIP, 1 - CLIP] before ``sqrt(1 - cos²)``. The original clips the
#: upper end to ``1 + 1e-5`` (spec §9.9): a rounding overshoot above 1 then makes ``sin`` NaN,
#: and the gradient of ``sqrt`` at 0 is infinite. Clipping below 1 keeps both finite.
COS_CLIP = 1e-5


def l2_normalize(x, axis=-1, epsilon=NORM_EPSILON):
    """``x / max(‖x‖, epsilon)`` along ``axis`` (PyTorch ``F.normalize`` semantics)."""
    norm = ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
    return x / ops.maximum(norm, epsilon)


class _MarginHead(keras.layers.Layer):
    """Shared part of the margin heads: the class-centre matrix and the cosine logits."""

    def __init__(self, num_classes, scale=64.0, margin=0.5, **kwargs):
        # The margin arithmetic is done in float32 even under a mixed-precision policy.
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{type(self).__name__}: num_classes must be an int >= 2, received {num_classes!r}")
        if not scale > 0:
            raise ValueError(f"{type(self).__name__}: scale must be > 0, received {scale!r}")
        self.num_classes = num_classes
        self.scale = float(scale)
        self.margin = float(margin)

    def build(self, input_shape):
        embedding_size = input_shape[-1]
        if embedding_size is None:
            raise ValueError(f"{self.name}: the embedding size (last input axis) must be known, received {input_shape}")
        self.kernel = self.add_weight(
            shape=(int(embedding_size), self.num_classes),
            initializer=keras.initializers.RandomNormal(stddev=0.01),
            name="kernel",
        )

    def compute_output_shape(self, embeddings_shape, labels_shape=None):
        # Keras matches these names to call()'s arguments (``<arg>_shape``) in a functional model.
        return (embeddings_shape[0], self.num_classes)

    def cosine(self, embeddings):
        """Cosine similarity of each embedding with each class centre, clipped (see COS_CLIP)."""
        x = l2_normalize(ops.cast(embeddings, self.compute_dtype), axis=1)
        w = l2_normalize(self.kernel, axis=0)
        return ops.clip(ops.matmul(x, w), -1.0 + COS_CLIP, 1.0 - COS_CLIP)

    def target_logit(self, cos_target):
        raise NotImplementedError

    def call(self, embeddings, labels=None):
        cos = self.cosine(embeddings)
        if labels is None:
            return cos * self.scale
        labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
        one_hot = ops.one_hot(labels, self.num_classes, dtype=cos.dtype)
        cos_target = ops.sum(cos * one_hot, axis=1, keepdims=True)
        # Only the target entry of each row changes; all others keep s·cos.
        logits = cos + one_hot * (self.target_logit(cos_target) - cos_target)
        return logits * self.scale

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "scale": self.scale, "margin": self.margin})
        return config


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class ArcMarginHead(_MarginHead):
    """ArcFace head (additive angular margin; spec §6.4, ``ArcFace`` in the original ``losses.py``).

    With ``t = cos θ_y`` the target cosine and ``m`` the margin, the target logit is
    ``cos(θ + m) = t·cos m − sqrt(1 − t²)·sin m`` when ``t > cos(π − m)``, otherwise
    ``t − m·sin m`` (the original's non-easy-margin branch, which keeps the logit monotonic in θ
    once θ + m would pass π). Everything is multiplied by ``s``.

    Differences from the original, both numerical safety fixes: the normalisations divide by
    ``max(‖·‖, 1e-12)`` and cosines are clipped to ``[−1 + 1e−5, 1 − 1e−5]`` instead of
    ``[−1 + 1e−5, 1 + 1e−5]`` (spec §9.9), so ``sqrt(1 − t²)`` can never be NaN. For cosines
    within the clip range the values equal the original's exactly.

    Args:
      num_classes: number of identities.
      scale: ``s``, the logit scale (64).
      margin: ``m``, the additive angular margin in radians (0.5).

    Call arguments:
      embeddings: ``(batch, embedding_size)`` raw or normalised embeddings.
      labels: ``(batch,)`` or ``(batch, 1)`` integer class ids; ``None`` for plain ``s·cos θ``.

    Returns ``(batch, num_classes)`` float32 logits.
    """

    def __init__(self, num_classes, scale=64.0, margin=0.5, **kwargs):
        super().__init__(num_classes, scale=scale, margin=margin, **kwargs)
        if not 0.0 <= self.margin < math.pi / 2:
            raise ValueError(f"ArcMarginHead: margin must be in [0, pi/2), received {margin!r}")

    def target_logit(self, cos_target):
        m = self.margin
        sin_target = ops.sqrt(ops.maximum(1.0 - ops.square(cos_target), 0.0))
        cos_theta_plus_m = cos_target * math.cos(m) - sin_target * math.sin(m)
        return ops.where(cos_target > math.cos(math.pi - m), cos_theta_plus_m, cos_target - math.sin(math.pi - m) * m)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class CosMarginHead(_MarginHead):
    """CosFace head (large-margin cosine loss; ``MarginCosineProduct`` in the original's commented code).

    The target logit is ``s·(cos θ_y − m)``; the others stay ``s·cos θ``.

    Args:
      num_classes: number of identities.
      scale: ``s`` (64).
      margin: ``m``, subtracted from the target cosine (0.35 as in the CosFace paper).

    Call arguments and output as :class:`ArcMarginHead`.
    """

    def __init__(self, num_classes, scale=64.0, margin=0.35, **kwargs):
        super().__init__(num_classes, scale=scale, margin=margin, **kwargs)
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"CosMarginHead: margin must be in [0, 1), received {margin!r}")

    def target_logit(self, cos_target):
        return cos_target - self.margin


HEADS = {"arcface": ArcMarginHead, "cosface": CosMarginHead}


def build_head(kind: str, num_classes: int, scale: float = 64.0, margin: float | None = None, **kwargs):
    """Builds a margin head by its CLI name (``arcface`` or ``cosface``); ``margin=None`` = default."""
    try:
        cls = HEADS[kind]
    except KeyError:
        raise ValueError(f"unknown head {kind!r}; expected one of {sorted(HEADS)}") from None
    if margin is not None:
        kwargs["margin"] = margin
    return cls(num_classes, scale=scale, **kwargs)
