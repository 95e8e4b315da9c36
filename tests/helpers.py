"""Test harness shared by all test modules (written once, used everywhere): config round trip,
`.keras` save/load, the layer checks, the two-CPU strategy. Models and data: tests/factory.py."""

from __future__ import annotations

import json

import numpy as np


def assert_config_round_trip(layer_or_model) -> None:
    """``from_config(get_config())`` rebuilds an object with the identical JSON config."""
    import keras

    config = layer_or_model.get_config()
    text = json.dumps(config, sort_keys=True)  # must be JSON-native
    rebuilt = type(layer_or_model).from_config(json.loads(text))
    assert json.dumps(rebuilt.get_config(), sort_keys=True) == text
    # And through Keras' own serialisation (registered name, package).
    ser = keras.saving.serialize_keras_object(layer_or_model)
    again = keras.saving.deserialize_keras_object(json.loads(json.dumps(ser)))
    assert type(again) is type(layer_or_model)


def assert_keras_save_load_same_outputs(model, inputs, tmp_path, atol: float = 0.0) -> None:
    """Saving to ``.keras`` and loading back gives the same outputs (inference mode)."""
    import keras

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    a = np.asarray(model(inputs, training=False))
    b = np.asarray(loaded(inputs, training=False))
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)


_STRATEGIES = {}


def two_cpu_strategy():
    """The process's one MirroredStrategy over the two logical CPUs of tests/conftest.py. Tests
    share it: the collectives of several instances in one process interfere (CollectiveGatherV2 /
    CollectiveReduceV2 errors in whichever instance runs second)."""
    if "two_cpus" not in _STRATEGIES:
        import tensorflow as tf

        _STRATEGIES["two_cpus"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return _STRATEGIES["two_cpus"]


def _symbolic_inputs(arrays):
    import keras

    return [keras.Input(a.shape[1:], dtype=str(a.dtype)) for a in arrays]


def _build_three_ways(make_layer, arrays, call_kwargs):
    """The same layer built by an eager call, by ``build(shape)`` and inside a functional model."""
    import keras

    keras.utils.set_random_seed(0)
    eager = make_layer()
    eager_out = eager(*arrays, **call_kwargs)
    explicit = make_layer()
    explicit.build(arrays[0].shape)  # as Keras' own first call does: the shape of the first input
    assert explicit.built, f"{type(explicit).__name__}.build did not mark the layer built"
    explicit_out = explicit(*arrays, **call_kwargs)
    symbolic = make_layer()
    inputs = _symbolic_inputs(arrays)
    model = keras.Model(inputs, symbolic(*inputs, **call_kwargs))
    layers = (eager, explicit, symbolic)
    for other in layers[1:]:
        assert [tuple(w.shape) for w in other.trainable_weights] == [tuple(w.shape) for w in eager.trainable_weights]
        assert [tuple(w.shape) for w in other.non_trainable_weights] == [
            tuple(w.shape) for w in eager.non_trainable_weights]
    assert tuple(explicit_out.shape) == tuple(eager_out.shape)
    assert tuple(model.output_shape[1:]) == tuple(eager_out.shape[1:])
    return eager, np.asarray(eager_out), model


def _assert_every_weight_gets_a_gradient(layer, arrays, call_kwargs):
    import tensorflow as tf

    upstream = None
    with tf.GradientTape() as tape:
        out = layer(*arrays, training=True, **call_kwargs)
        upstream = np.random.default_rng(1).normal(size=tuple(out.shape)).astype(np.float32)
        loss = tf.reduce_sum(out * upstream)
    grads = tape.gradient(loss, layer.trainable_weights)
    for weight, grad in zip(layer.trainable_weights, grads):
        assert grad is not None, f"{weight.path}: no gradient"
        assert np.any(np.asarray(grad) != 0), f"{weight.path}: an all-zero gradient"
        assert np.all(np.isfinite(np.asarray(grad))), f"{weight.path}: a non-finite gradient"


def run_layer_test(make_layer, inputs, tmp_path, *, call_kwargs=None, expected_output_shape=None,
                   expected_num_trainable_weights=None, expected_num_non_trainable_weights=None,
                   expected_output_dtype="float32", supports_training=True) -> np.ndarray:
    """The layer checks every layer test starts from (keras-hub's ``run_layer_test`` idea).

    ``make_layer()`` returns a fresh layer; ``inputs`` is a tiny numpy input or a tuple of them
    (extra positional call arguments, e.g. labels). Checks: built three ways (eager call,
    ``build(shape)``, functional) with the same weights and output shape; the config round trip;
    a functional ``.keras`` save/load giving the same outputs; output shape/dtype, finite; with
    ``supports_training``, a training-mode call in which every trainable weight gets a finite,
    non-zero gradient. Returns the eager layer's output for value checks of the caller.
    """
    arrays = [np.asarray(a) for a in (inputs if isinstance(inputs, tuple) else (inputs,))]
    call_kwargs = dict(call_kwargs or {})
    layer, output, model = _build_three_ways(make_layer, arrays, call_kwargs)
    if expected_output_shape is not None:
        assert output.shape == tuple(expected_output_shape), output.shape
    assert output.dtype == np.dtype(expected_output_dtype) and np.all(np.isfinite(output))
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights
    if expected_num_non_trainable_weights is not None:
        assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    assert_config_round_trip(layer)
    assert_keras_save_load_same_outputs(model, arrays if len(arrays) > 1 else arrays[0], tmp_path)
    if supports_training and layer.trainable_weights:
        _assert_every_weight_gets_a_gradient(layer, arrays, call_kwargs)
    return output
