"""Tiny models and conversions shared by the evaluation tests (built in-test, nothing downloaded)."""

from __future__ import annotations

import numpy as np


def build_tiny_embedding_model(seed: int = 0, embedding_size: int = 8, size: int = 112):
    """Conv(stride 4) -> BN -> PReLU -> Conv(stride 4) -> Flatten -> Dense: a face-net shaped toy.

    BatchNorm statistics are randomised so inference mode is exercised.
    """
    import keras

    from tests.helpers import randomize_batchnorm_statistics

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(4, 4, strides=4, use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="prelu1")(x)
    x = keras.layers.Conv2D(4, 4, strides=4, name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(embedding_size, name="embedding")(x)
    model = keras.Model(inp, out, name="tiny_embedder")
    randomize_batchnorm_statistics(model, seed=seed)
    return model


def convert_to_tflite(model, *, batch_one: bool = False, quantize=None, calibration=None) -> bytes:
    """TFLite flatbuffer of ``model``: dynamic batch, static batch 1, or full-integer quantised.

    ``calibration``: list of float pixel batches 0..255 (normalised here) for quantisation.
    """
    import keras
    import tensorflow as tf

    from pocketnet_tf.data import preprocess

    if batch_one:
        inp = keras.Input(batch_shape=(1, *model.inputs[0].shape[1:]))
        model = keras.Model(inp, model(inp))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for batch in calibration:
                yield [preprocess.normalize(batch)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = quantize
        converter.inference_output_type = quantize
    return converter.convert()


def mean_colour_model(size: int = 112, grid: int = 1):
    """Parameter-free embedder: per-cell mean of the normalised input (``grid`` x ``grid`` cells).

    With ``grid=1`` the embedding is the mean colour: analytically known for known images.
    """
    import keras

    inp = keras.Input((size, size, 3))
    x = keras.layers.AveragePooling2D(pool_size=size // grid)(inp)
    out = keras.layers.Flatten()(x)
    return keras.Model(inp, out, name=f"mean_colour_{grid}")


def rng_images(n: int, seed: int, size: int = 112) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def smooth_face(seed: int, size: int = 112, margin: int = 0) -> np.ndarray:
    """A smooth synthetic 'face' (sum of coloured Gaussian blobs), distinct per seed.

    ``margin`` extends the same picture by that many pixels on every side (pixel ``i + margin``
    of the result is pixel ``i`` of the ``margin=0`` face).
    """
    yy, xx = np.mgrid[-margin : size + margin, -margin : size + margin].astype(np.float64)
    rng = np.random.default_rng(seed)
    img = np.zeros(xx.shape + (3,)) + rng.uniform(20, 120, 3)
    for _ in range(6):
        cx, cy, s = rng.uniform(15, size - 15, 2).tolist() + [rng.uniform(10, 22)]
        img += rng.uniform(-60, 120, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def grid_mean_embedding(pixels: np.ndarray, grid: int) -> np.ndarray:
    """numpy reference of :func:`mean_colour_model`: per-cell mean of the normalised image."""
    from pocketnet_tf.data import preprocess

    x = preprocess.normalize(pixels).astype(np.float64)
    n = x.shape[0] // grid
    return np.concatenate(
        [x[r * n : (r + 1) * n, c * n : (c + 1) * n].mean(axis=(0, 1)) for r in range(grid) for c in range(grid)]
    )
