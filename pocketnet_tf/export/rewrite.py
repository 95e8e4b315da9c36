"""Export-only graph rewrites: the model the converter sees, computing what the Keras model computes.

The trained model is never touched. :func:`build_export_model` clones it (config + copied
weights), rewrites the clone's PReLUs, and wraps it with a static (or dynamic) batch, optional
in-graph pixel normalisation and optional L2 normalisation.

Why rewrite PReLU: XNNPACK (the LiteRT CPU delegate) has no int8 PRELU kernel, so a converter
int8 PocketNet (~150 PReLUs) falls back to the reference kernels and runs several times slower
than fp32 (measured in ``tflite/README.md``). Two exact identities remove PRELU from the graph:

- ``prelu(x) = A*x + B*|x|`` with ``A = (1 + alpha) / 2`` and ``B = (1 - alpha) / 2`` per channel,
  where ``|x| = leaky_relu(x, -1)`` (LEAKY_RELU is an int8 XNNPACK op; ABS, MAXIMUM, MINIMUM and a
  stand-alone RELU are not) and the per-channel products are 1x1 depthwise convolutions (an int8
  per-channel MUL is slower than the fp32 one in XNNPACK). Used for every PReLU that is not folded.
- A PReLU whose only consumer is a plain Conv2D (possibly through a ZeroPadding2D) is folded the
  same way: it emits ``concat([x, |x|])`` and the conv's kernel is scaled and stacked.
- For PocketNet's primitives, where PReLU is followed by linear ops (depthwise k x k then
  pointwise in ``DWConv``; depthwise 1x1 then pointwise in ``StdConv`` and ``FactorizedReduce``),
  ``L(prelu(x)) = L_A(x) + L_B(|x|)``: the op reads ``concat([x, |x|])`` and its kernels absorb A
  and B (depthwise kernels scaled per channel and stacked; the pointwise kernel stacked twice, so
  the pointwise conv also adds the two halves). No per-channel multiply is left.

Both are equalities in real arithmetic; in float32 they differ from ``keras.layers.PReLU`` by
rounding only (tested).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from pocketnet_tf.data import preprocess

__all__ = ["PRELU_REWRITES", "build_export_model", "clone_with_weights", "count_prelus", "rewrite_prelus"]

#: ``none``: keep PReLU; ``decompose``: A*x + B*|x| everywhere; ``fold``: fold into PocketNet's
#: primitives where possible and decompose the rest.
PRELU_REWRITES = ("none", "decompose", "fold")


def _plain_prelu(layer) -> bool:
    from pocketnet_tf.layers.common import PReLU

    return type(layer) in (keras.layers.PReLU, PReLU)


def _per_channel_alpha(layer) -> bool:
    shape = tuple(layer.alpha.shape)
    return all(d == 1 for d in shape[:-1])


def _abs(x):
    # LEAKY_RELU with slope -1 is |x| and is an int8 op of XNNPACK (ABS is not).
    return ops.leaky_relu(x, negative_slope=-1.0)


def _with_abs(x):
    # ``concat([x, |x|])``; a state feeding several folded primitives gets one LEAKY_RELU and
    # CONCATENATION in the converted graph (the converter merges the identical subexpressions).
    return ops.concatenate([x, _abs(x)], axis=-1)


def _halves(alpha):
    a = ops.reshape(alpha, (-1,))
    return 0.5 * (1.0 + a), 0.5 * (1.0 - a)


class _DecomposedPReLU(keras.layers.PReLU):
    """``A*x + B*|x|``; the per-channel products as 1x1 depthwise convolutions."""

    def call(self, inputs, training=None):  # ``training``: the package's PReLU is called with it
        if not _per_channel_alpha(self) or len(inputs.shape) != 4:
            alpha = self.alpha
            return 0.5 * (1.0 + alpha) * inputs + 0.5 * (1.0 - alpha) * _abs(inputs)
        a, b = _halves(self.alpha)
        ka = ops.reshape(a, (1, 1, -1, 1))
        kb = ops.reshape(b, (1, 1, -1, 1))
        return ops.depthwise_conv(inputs, ka, 1, "valid") + ops.depthwise_conv(_abs(inputs), kb, 1, "valid")


def _stack_pointwise(kernel, scale_a, scale_b):
    """1x1 kernel ``[1, 1, C, F]`` -> ``[1, 1, 2C, F]`` reading ``concat([x, |x|])``."""
    return ops.concatenate(
        [kernel * ops.reshape(scale_a, (1, 1, -1, 1)), kernel * ops.reshape(scale_b, (1, 1, -1, 1))], axis=2
    )


def _folded_classes():
    from pocketnet_tf.layers.primitives import DWConv, FactorizedReduce, StdConv

    class FoldedDWConv(DWConv):
        def call(self, inputs, training=None):
            a, b = _halves(self.prelu.alpha)
            k = self.depthwise.kernel  # [kh, kw, C, 1]
            kernel = ops.concatenate(
                [k * ops.reshape(a, (1, 1, -1, 1)), k * ops.reshape(b, (1, 1, -1, 1))], axis=2
            )
            x = _with_abs(inputs)
            if self.pad is not None:
                x = self.pad(x)
            x = ops.depthwise_conv(x, kernel, self.strides, self.depthwise.padding)
            pw = self.pointwise.kernel
            x = ops.conv(x, ops.concatenate([pw, pw], axis=2), 1, "valid")
            return self.bn(x, training=training)

    class FoldedStdConv(StdConv):
        def call(self, inputs, training=None):
            a, b = _halves(self.prelu.alpha)
            s = ops.reshape(self.depthwise.kernel, (-1,))
            x = _with_abs(inputs)
            x = ops.conv(x, _stack_pointwise(self.pointwise.kernel, a * s, b * s), 1, "valid")
            return self.bn(x, training=training)

    class FoldedFactorizedReduce(FactorizedReduce):
        def call(self, inputs, training=None):
            a, b = _halves(self.prelu.alpha)
            x = _with_abs(inputs)

            def path(dw, pw, z):
                s = ops.reshape(dw.kernel, (-1,))
                return ops.conv(z, _stack_pointwise(pw.kernel, a * s, b * s), 2, "valid")

            left = path(self.depthwise_a, self.pointwise_a, x)
            right = path(self.depthwise_b, self.pointwise_b, x[:, 1:, 1:, :])
            return self.bn(ops.concatenate([left, right], axis=-1), training=training)

    return {DWConv: FoldedDWConv, StdConv: FoldedStdConv, FactorizedReduce: FoldedFactorizedReduce}


class _PReLUWithAbs(keras.layers.PReLU):
    """Emits ``concat([x, |x|])``; the following convolution absorbs the slopes."""

    def call(self, inputs, training=None):
        return _with_abs(inputs)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1])


class _FoldedConv2D(keras.layers.Conv2D):
    """A Conv2D reading ``concat([x, |x|])`` of its PReLU's input: ``conv(prelu(x)) =
    conv_A(x) + conv_B(|x|)`` with the kernel's input channels scaled by A and B and stacked.
    Zero padding stays exact (``prelu(0) = 0 = A*0 + B*|0|``)."""

    def call(self, inputs):
        a, b = _halves(self._folded_prelu.alpha)
        k = self.kernel
        kernel = ops.concatenate(
            [k * ops.reshape(a, (1, 1, -1, 1)), k * ops.reshape(b, (1, 1, -1, 1))], axis=2
        )
        y = ops.conv(inputs, kernel, self.strides, self.padding, self.data_format, self.dilation_rate)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y


def _single_consumer(layer):
    nodes = getattr(layer, "_outbound_nodes", [])
    return nodes[0].operation if len(nodes) == 1 else None


def _conv_after(prelu):
    """The plain Conv2D fed only by ``prelu`` (directly or through one ZeroPadding2D), or None."""
    consumer = _single_consumer(prelu)
    if type(consumer) is keras.layers.ZeroPadding2D:
        consumer = _single_consumer(consumer)
    if (type(consumer) is keras.layers.Conv2D and consumer.groups == 1 and consumer.data_format == "channels_last"
            and _per_channel_alpha(prelu) and len(getattr(consumer, "_inbound_nodes", [])) == 1):
        return consumer
    return None


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


def count_prelus(model) -> int:
    return sum(isinstance(layer, keras.layers.PReLU) for layer in _all_layers(model))


def clone_with_weights(model):
    """A new model built from ``model``'s serialised config, holding copies of its weights."""
    import pocketnet_tf.layers  # noqa: F401  (registers the package's classes)
    import pocketnet_tf.models  # noqa: F401

    config = keras.saving.serialize_keras_object(model)
    clone = keras.saving.deserialize_keras_object(config)
    weights = model.get_weights()
    if len(clone.weights) != len(weights):
        raise ValueError(f"{model.name}: clone has {len(clone.weights)} weights, the model {len(weights)}")
    clone.set_weights(weights)
    return clone


def rewrite_prelus(model, how: str) -> dict:
    """Rewrites the PReLUs of ``model`` in place (call it on a clone). Returns counts per rewrite.

    Instances switch to export-only subclasses (same weights, same config, a different ``call``);
    such a model is for conversion only and must not be saved.
    """
    if how not in PRELU_REWRITES:
        raise ValueError(f"prelu rewrite must be one of {PRELU_REWRITES}, got {how!r}")
    counts = {"folded": 0, "decomposed": 0, "kept": 0}
    layers = _all_layers(model)
    folded_inner = set()
    if how == "fold":
        classes = _folded_classes()
        for layer in layers:
            target = classes.get(type(layer))
            if target is not None:
                layer.__class__ = target
                folded_inner.add(id(layer.prelu))
                counts["folded"] += 1
    if how == "fold":
        for layer in layers:
            if _plain_prelu(layer) and id(layer) not in folded_inner:
                conv = _conv_after(layer)
                if conv is not None:
                    layer.__class__ = _PReLUWithAbs
                    conv.__class__ = _FoldedConv2D
                    object.__setattr__(conv, "_folded_prelu", layer)  # no Keras tracking: export only
                    object.__setattr__(conv, "input_spec", None)  # it now reads 2C channels
                    folded_inner.add(id(layer))
                    counts["folded"] += 1
    for layer in layers:
        if _plain_prelu(layer) and id(layer) not in folded_inner:
            if how == "none":
                counts["kept"] += 1
            else:
                layer.__class__ = _DecomposedPReLU
                counts["decomposed"] += 1
    return counts


def build_export_model(
    model,
    *,
    raw_input: bool = False,
    l2_normalize: bool = False,
    batch_size: int | None = 1,
    prelu: str = "none",
):
    """The model handed to the converter.

    Args:
      model: a Keras model mapping ``(N, H, W, 3)`` normalised images to raw embeddings.
      raw_input: fold :func:`pocketnet_tf.data.preprocess.normalize` into the graph, so the model
        takes RGB pixels 0..255 (float32).
      l2_normalize: append L2 normalisation of the embedding.
      batch_size: static batch (1 for phones) or ``None`` for a dynamic batch.
      prelu: one of :data:`PRELU_REWRITES` (applied to a clone; ``model`` is untouched).

    Returns:
      ``(export_model, info)`` where ``info`` records what was done.
    """
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] is None or shape[2] is None:
        raise ValueError(f"{model.name}: expected one (N, H, W, 3) input with static H and W, got {shape}")
    core = clone_with_weights(model)
    counts = rewrite_prelus(core, prelu)
    image = keras.Input(shape[1:], batch_size=batch_size, name="image", dtype="float32")
    x = image
    if raw_input:
        # Same arithmetic as preprocess.normalize: x / STD - MEAN / STD.
        x = keras.layers.Rescaling(1.0 / preprocess.STD, offset=-preprocess.MEAN / preprocess.STD, name="normalize")(x)
    y = core(x, training=False)
    if l2_normalize:
        y = keras.layers.UnitNormalization(axis=-1, name="l2_normalize")(y)
    export = keras.Model(image, y, name=f"{model.name}_export")
    info = {
        "prelu_rewrite": prelu,
        "prelu_counts": counts,
        "raw_input": bool(raw_input),
        "l2_normalized": bool(l2_normalize),
        "batch_size": batch_size,
    }
    return export, info


def reference_outputs(model, images_uint8: np.ndarray, *, l2_normalize: bool = False, batch: int = 32) -> np.ndarray:
    """The Keras model's embeddings of uint8 pixels (normalised exactly as in training)."""
    outs = []
    for start in range(0, len(images_uint8), batch):
        x = preprocess.normalize(images_uint8[start : start + batch])
        outs.append(np.asarray(model(x, training=False), dtype=np.float32))
    out = np.concatenate(outs) if outs else np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)
    if l2_normalize:
        out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out
