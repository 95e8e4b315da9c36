"""Test harness shared by all test modules (written once, used everywhere)."""

from __future__ import annotations

import json

import numpy as np


def random_images(batch: int, size: int = 112, seed: int = 0, channels: int = 3) -> np.ndarray:
    """Normalised NHWC float32 images in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(batch, size, size, channels)).astype(np.float32)


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


def randomize_batchnorm_statistics(model, seed: int = 0) -> None:
    """Fills every BatchNormalization's moving statistics (and affine params) with random values
    so that inference-mode comparisons exercise them."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            for w in layer.weights:
                shape = tuple(w.shape)
                if "moving_variance" in w.path:
                    w.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
                elif "moving_mean" in w.path or "beta" in w.path:
                    w.assign(rng.normal(0.0, 0.1, shape).astype(np.float32))
                elif "gamma" in w.path:
                    w.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))


def _all_layers(model):
    out = []
    stack = [model]
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(getattr(layer, "_layers", []) or [])
    return out


_STRATEGIES = {}


def two_cpu_strategy():
    """The process's one MirroredStrategy over the two logical CPUs of tests/conftest.py. Tests
    share it: the collectives of several instances in one process interfere (CollectiveGatherV2 /
    CollectiveReduceV2 errors in whichever instance runs second)."""
    if "two_cpus" not in _STRATEGIES:
        import tensorflow as tf

        _STRATEGIES["two_cpus"] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return _STRATEGIES["two_cpus"]
