"""Shared pieces of the training tests: a tiny backbone and a tiny labelled dataset."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pocketnet_tf.layers.common import batch_norm, prelu


def tiny_backbone(embedding_size=4, input_size=8, *, batch_norm_layers=True, seed=0, name="tiny"):
    """conv 3x3 -> [BN] -> PReLU -> global average pool -> dense: a real (if small) embedding net.

    ``batch_norm_layers=False`` gives a net whose training-mode output does not depend on how a
    batch is split across replicas (BN statistics are per replica, as in the original's DDP)."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv",
                            kernel_initializer=keras.initializers.GlorotUniform(seed))(inputs)
    if batch_norm_layers:
        x = batch_norm("bn")(x)
    x = prelu("prelu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(embedding_size, name="fc",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed + 1))(x)
    return keras.Model(inputs, outputs, name=name)


def tiny_data(n=16, input_size=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, input_size, input_size, 3)).astype(np.float32)
    y = (np.arange(n) % classes).astype(np.int32)
    return x, y


def dataset(x, y, batch_size):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def weights_of(model):
    return [np.array(w) for w in model.weights]
