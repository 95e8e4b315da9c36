"""Shared builders for the export tests: tiny models and tiny real-format data sets."""

from __future__ import annotations

import numpy as np

SIZE = 32  # input side of the tiny models (the GDC head then covers a 2x2 map)


def tiny_pocketnet(seed: int = 0, *, embedding_size: int = 16):
    """A 3-cell PocketNet (softmax_casia genotype, C=4) with non-trivial BN statistics and PReLU
    slopes (including negative and > 1 slopes, which the rewrite must handle)."""
    import keras

    from pocketnet_tf.models import PocketNet

    keras.utils.set_random_seed(seed)
    model = PocketNet(channels=4, num_cells=3, embedding_size=embedding_size, input_size=SIZE, name="tiny_pocketnet")
    randomize(model, seed)
    return model


def tiny_plain(seed: int = 0):
    """A plain functional model with the same ingredients (ZeroPadding2D, Conv2D/DepthwiseConv2D
    without bias, BN eps 1e-5, PReLU per channel, MaxPooling2D, Concatenate, Add, Flatten)."""
    import keras

    keras.utils.set_random_seed(seed)
    bn = dict(epsilon=1e-5, momentum=0.9)
    inp = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.ZeroPadding2D(1)(inp)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization(**bn)(x)
    a = keras.layers.PReLU(shared_axes=[1, 2])(x)
    b = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(a)
    b = keras.layers.BatchNormalization(**bn)(b)
    c = keras.layers.MaxPooling2D(3, strides=1, padding="same")(x)
    x = keras.layers.Add()([b, c])
    x = keras.layers.Concatenate()([x, keras.layers.PReLU(shared_axes=[1, 2])(x)])
    x = keras.layers.Conv2D(8, 1, use_bias=False)(x)
    x = keras.layers.BatchNormalization(**bn)(x)
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.DepthwiseConv2D(SIZE // 2, use_bias=False)(x)
    x = keras.layers.Conv2D(16, 1, use_bias=False)(x)
    out = keras.layers.Flatten()(x)
    model = keras.Model(inp, out, name="tiny_plain")
    randomize(model, seed)
    return model


def randomize(model, seed: int) -> None:
    """Random PReLU slopes in [-0.3, 1.3], random BN affine parameters, and BN moving statistics
    set from one training-mode pass over random images, so activations have the scale of a
    trained network's (unit-ish) rather than growing layer after layer."""
    import keras

    from pocketnet_tf.data.preprocess import normalize

    rng = np.random.default_rng(seed)
    bns = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.PReLU):
            layer.alpha.assign(rng.uniform(-0.3, 1.3, tuple(layer.alpha.shape)).astype(np.float32))
        elif isinstance(layer, keras.layers.BatchNormalization):
            shape = tuple(layer.moving_mean.shape)
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            if layer.center:
                layer.beta.assign(rng.normal(0, 0.1, shape).astype(np.float32))
            bns.append((layer, layer.momentum))
            layer.momentum = 0.0
    model(normalize(pixels(16, seed + 100)), training=True)
    for layer, momentum in bns:
        layer.momentum = momentum


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def write_data(root) -> dict:
    """A tiny RecordIO training set and a verification .bin at SIZE x SIZE (synthetic faces)."""
    from pocketnet_tf.data.synthetic import SynthConfig, generate

    return generate(SynthConfig(out=str(root), identities=6, images_per_identity=5, size=SIZE,
                                val_identities=4, val_pairs=20, seed=3))
