"""The tests' one factory: tiny models, their weights randomised, TFLite files, converter bundles and
the small random or synthetic data they run on. Every test module takes these from here.

Sizes follow CONTRIBUTING.md: 2-8 channels, 2-3 cells, a handful of images; 112x112 only where a
test needs the real input side (the face pipeline, the bundles the apps read). Nothing is
downloaded: data sets are written in their real formats by :mod:`pocketnet_tf.data.synthetic`,
bundles by the converter library (``python -m pocketnet_tf.convert``'s code path).

TensorFlow and Keras are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Input side of the tiny export models (a 32x32 input leaves a 2x2 map for the GDC head).
EXPORT_SIZE = 32
#: Embedding size of the bundle model (112x112 input, the side the apps and the face pipeline use).
BUNDLE_EMBEDDING_SIZE = 16
#: ``(mode, raw_input)`` of every converter bundle the app-side tests read.
BUNDLE_VARIANTS = (("fp32", False), ("fp32", True), ("int8", False), ("int8", True))
#: The tiny search network: 3 cells (reductions at 1 and 2), one node per cell (2 mixed edges),
#: 16x16 input -> 2x2 map.
SEARCH_TINY = dict(num_classes=3, channels=4, num_cells=3, num_nodes=1, input_size=16, head_width=8,
                   gdc_groups=2, embedding_size=4)


# ------------------------------------------------------------------------------------------ data


def random_images(batch: int, size: int = 112, seed: int = 0, channels: int = 3, dtype="float32") -> np.ndarray:
    """Normalised NHWC images, uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, size=(batch, size, size, channels)).astype(dtype)


def labelled_images(n: int = 16, *, size: int = 8, classes: int = 3, seed: int = 0, dtype="float32"):
    """``(x, y)``: :func:`random_images` and labels ``0, 1, ..., classes - 1, 0, 1, ...``."""
    return random_images(n, size, seed, dtype=dtype), (np.arange(n) % classes).astype(np.int32)


def dataset(x, y, batch_size: int):
    """``tf.data`` batches of ``(x, y)`` in order."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def pixels(n: int, seed: int = 0, size: int = EXPORT_SIZE) -> np.ndarray:
    """``n`` uint8 RGB images of uniform noise, 0..255."""
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


def synthetic_faces(root, size: int = EXPORT_SIZE) -> dict:
    """A tiny RecordIO training set (6 identities x 5 images) and a verification ``.bin``
    (4 identities, 20 pairs) of synthetic faces at ``size``; returns the generator's summary
    (``summary["files"]["synth_val.bin"]`` is the ``.bin``)."""
    from pocketnet_tf.data.synthetic import SynthConfig, generate

    return generate(SynthConfig(out=str(root), identities=6, images_per_identity=5, size=size,
                                val_identities=4, val_pairs=20, seed=3))


# ------------------------------------------------------------------------------- weights


def randomize_weights(model, seed: int = 0, *, prelu_slopes: bool = False, other_weights: bool = False,
                      calibrate_batchnorm: bool = False) -> None:
    """Random values where a freshly built model has trivial ones, so that inference-mode
    comparisons exercise every parameter. ``model`` is a model or a layer.

    Every BatchNormalization gets gamma ~ U(0.5, 1.5) and beta ~ N(0, 0.1), and moving statistics
    mean ~ N(0, 0.1), variance ~ U(0.5, 2) -- or, with ``calibrate_batchnorm``, the statistics of
    one training-mode pass over 16 random images (:func:`pixels` at the model's input side), so
    activations keep a trained network's unit-ish scale instead of growing layer after layer.
    ``prelu_slopes``: PReLU slopes ~ U(-0.3, 1.3) (negative and > 1 slopes included).
    ``other_weights``: every remaining weight (kernels, biases) ~ N(0, 0.5).
    """
    import keras

    from pocketnet_tf.data.preprocess import normalize

    rng = np.random.default_rng(seed)
    done = set()
    calibrated = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.PReLU) and prelu_slopes:
            layer.alpha.assign(rng.uniform(-0.3, 1.3, tuple(layer.alpha.shape)).astype(np.float32))
            done.add(id(layer.alpha))
        elif isinstance(layer, keras.layers.BatchNormalization):
            shape = tuple(layer.moving_mean.shape)
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.1, shape).astype(np.float32))
            if calibrate_batchnorm:
                calibrated.append((layer, layer.momentum))
                layer.momentum = 0.0
            else:
                layer.moving_mean.assign(rng.normal(0.0, 0.1, shape).astype(np.float32))
                layer.moving_variance.assign(rng.uniform(0.5, 2.0, shape).astype(np.float32))
            done.update(id(w) for w in layer.weights)
    if other_weights:
        for weight in model.weights:
            if id(weight) not in done:
                weight.assign(rng.normal(0.0, 0.5, tuple(weight.shape)).astype(np.float32))
    if calibrated:
        size = int(model.inputs[0].shape[1])
        model(normalize(pixels(16, seed + 100, size=size)), training=True)
        for layer, momentum in calibrated:
            layer.momentum = momentum


# -------------------------------------------------------------------------------- models


def tiny_embedder(seed: int = 0, embedding_size: int = 8, size: int = 112):
    """Conv(stride 4) -> BN -> PReLU -> Conv(stride 4) -> Flatten -> Dense: a face-net shaped toy
    with random BatchNorm statistics (inference mode is exercised)."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(4, 4, strides=4, use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name="bn1")(x)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="prelu1")(x)
    x = keras.layers.Conv2D(4, 4, strides=4, name="conv2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(embedding_size, name="embedding")(x)
    model = keras.Model(inp, out, name="tiny_embedder")
    randomize_weights(model, seed=seed)
    return model


def mean_colour_model(size: int = 112, grid: int = 1):
    """Parameter-free embedder: per-cell mean of the normalised input (``grid`` x ``grid`` cells).

    With ``grid=1`` the embedding is the mean colour: analytically known for known images
    (:func:`grid_mean_embedding` is its numpy reference).
    """
    import keras

    inp = keras.Input((size, size, 3))
    x = keras.layers.AveragePooling2D(pool_size=size // grid)(inp)
    out = keras.layers.Flatten()(x)
    return keras.Model(inp, out, name=f"mean_colour_{grid}")


def grid_mean_embedding(pixels_hwc: np.ndarray, grid: int) -> np.ndarray:
    """numpy reference of :func:`mean_colour_model`: per-cell mean of the normalised image."""
    from pocketnet_tf.data import preprocess

    x = preprocess.normalize(pixels_hwc).astype(np.float64)
    n = x.shape[0] // grid
    return np.concatenate(
        [x[r * n : (r + 1) * n, c * n : (c + 1) * n].mean(axis=(0, 1)) for r in range(grid) for c in range(grid)]
    )


def tiny_pocketnet(seed: int = 0, *, embedding_size: int = 16):
    """A 3-cell PocketNet (softmax_casia genotype, C=4) at :data:`EXPORT_SIZE`, with random PReLU
    slopes and BN parameters and calibrated BN statistics (what the export rewrite must handle)."""
    import keras

    from pocketnet_tf.models import PocketNet

    keras.utils.set_random_seed(seed)
    model = PocketNet(channels=4, num_cells=3, embedding_size=embedding_size, input_size=EXPORT_SIZE,
                      name="tiny_pocketnet")
    randomize_weights(model, seed, prelu_slopes=True, calibrate_batchnorm=True)
    return model


def tiny_plain(seed: int = 0):
    """A plain functional model with PocketNet's ingredients (ZeroPadding2D, Conv2D/DepthwiseConv2D
    without bias, BN eps 1e-5, PReLU per channel, MaxPooling2D, Concatenate, Add, Flatten) at
    :data:`EXPORT_SIZE`, randomised as :func:`tiny_pocketnet`."""
    import keras

    keras.utils.set_random_seed(seed)
    bn = dict(epsilon=1e-5, momentum=0.9)
    inp = keras.Input((EXPORT_SIZE, EXPORT_SIZE, 3))
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
    x = keras.layers.DepthwiseConv2D(EXPORT_SIZE // 2, use_bias=False)(x)
    x = keras.layers.Conv2D(16, 1, use_bias=False)(x)
    out = keras.layers.Flatten()(x)
    model = keras.Model(inp, out, name="tiny_plain")
    randomize_weights(model, seed, prelu_slopes=True, calibrate_batchnorm=True)
    return model


def tiny_backbone(embedding_size=4, input_size=8, *, batch_norm_layers=True, seed=0, name="tiny"):
    """conv 3x3 -> [BN] -> PReLU -> global average pool -> dense: a real (if small) embedding net
    for the training tests.

    ``batch_norm_layers=False`` gives a net whose training-mode output does not depend on how a
    batch is split across replicas (BN statistics are per replica, as in the original's DDP)."""
    import keras

    from pocketnet_tf.layers.common import batch_norm, prelu

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


def bundle_model(seed: int = 0):
    """112x112x3 -> :data:`BUNDLE_EMBEDDING_SIZE`, with a PReLU so the int8 export exercises the
    PReLU rewrite; He-normal weights keep activations O(1), so int8 quantisation is meaningful."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((112, 112, 3))
    init = keras.initializers.HeNormal(seed=seed)
    x = keras.layers.Conv2D(8, 5, strides=4, kernel_initializer=init)(inputs)
    x = keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.25))(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(BUNDLE_EMBEDDING_SIZE, kernel_initializer=init)(x)
    return keras.Model(inputs, outputs, name="tiny_android")


def tiny_search_network(seed: int = 0, **overrides):
    """A :class:`SearchNetwork` of :data:`SEARCH_TINY` size (keyword overrides win)."""
    import keras

    from pocketnet_tf.search.search_network import SearchNetwork

    keras.utils.set_random_seed(seed)
    return SearchNetwork(**{**SEARCH_TINY, "seed": seed, **overrides})


def compiled_search_model(network, *, second_order=True, original=False, lr=0.1, momentum=0.9, weight_decay=3e-4,
                          clip_norm=5.0, alpha_lr=1.2e-3, alpha_weight_decay=1e-3):
    """A :class:`SearchModel` over ``network`` with the search's two optimisers (the recipe's
    hyper-parameters unless given)."""
    from pocketnet_tf.search.optimizers import TorchAdam
    from pocketnet_tf.search.search_model import SearchModel
    from pocketnet_tf.train.optimizer import TorchSGD

    model = SearchModel(network, second_order=second_order, alpha_grad_includes_train_loss=original)
    model.compile(
        weight_optimizer=TorchSGD(lr, momentum=momentum, weight_decay=weight_decay, clip_norm=clip_norm),
        alpha_optimizer=TorchAdam(alpha_lr, beta_1=0.5, beta_2=0.999, coupled_weight_decay=alpha_weight_decay),
    )
    return model


def weight_values(variables) -> list[np.ndarray]:
    """Copies of the variables' current values."""
    import keras

    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


# ------------------------------------------------------------------------ TFLite, bundles


def convert_to_tflite(model, *, batch_one: bool = False, quantize=None, calibration=None) -> bytes:
    """TFLite flatbuffer of ``model`` by the plain TF converter: dynamic batch, static batch 1, or
    full-integer quantised (``quantize`` = the I/O dtype; ``calibration``: a list of float pixel
    batches 0..255, normalised here)."""
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


def export_bundle(root, mode: str, raw_input: bool, *, with_threshold: bool = True) -> Path:
    """``root/bundle_<mode>[_raw][_nothreshold]``: the converter's bundle of :func:`bundle_model`
    (model, 112x112 synthetic data and ``.keras`` file are created once under ``root``)."""
    from pocketnet_tf.export.exporter import ExportConfig, run_export

    root = Path(root)
    model_path = root / "tiny.keras"
    if not model_path.exists():
        bundle_model().save(model_path)
    data = root / "data"
    if not data.exists():
        synthetic_faces(data, size=112)
    out = root / f"bundle_{mode}{'_raw' if raw_input else ''}{'' if with_threshold else '_nothreshold'}"
    run_export(ExportConfig(
        model=str(model_path), mode=mode, out=str(out), representative=str(data),
        bin=(str(data / "synth_val.bin"),) if with_threshold else (), num_calibration=10, num_validation=6,
        golden_count=4, raw_input=raw_input,
        # An untrained model: its verification accuracy on 20 pairs is noise, the Keras/TFLite
        # agreement (cosine thresholds, kept at their defaults) is what must hold.
        max_accuracy_drop=100.0,
    ))
    return out
