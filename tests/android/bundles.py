"""Real verification bundles for the Android tests, written by the converter library.

A tiny Keras model (112x112x3 -> 16, with a PReLU so the int8 export exercises the PReLU rewrite)
is saved as ``.keras`` and exported by :func:`pocketnet_tf.export.exporter.run_export` -- the code
path of ``python -m pocketnet_tf.convert`` -- from a synthetic RecordIO set and verification
``.bin`` (real formats, :mod:`pocketnet_tf.data.synthetic`). Nothing here writes a bundle file by
hand.
"""

from __future__ import annotations

from pathlib import Path

EMBEDDING_SIZE = 16
#: (mode, raw_input) of every bundle the tests build.
VARIANTS = (("fp32", False), ("fp32", True), ("int8", False), ("int8", True))


def tiny_model(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((112, 112, 3))
    # He-normal weights keep activations O(1), so int8 quantisation is meaningful.
    init = keras.initializers.HeNormal(seed=seed)
    x = keras.layers.Conv2D(8, 5, strides=4, kernel_initializer=init)(inputs)
    x = keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.25))(x)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu", kernel_initializer=init)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(EMBEDDING_SIZE, kernel_initializer=init)(x)
    return keras.Model(inputs, outputs, name="tiny_android")


def write_data(root: Path) -> dict:
    """Synthetic faces at 112x112: a RecordIO training set and a verification ``.bin``."""
    from pocketnet_tf.data.synthetic import SynthConfig, generate

    return generate(SynthConfig(out=str(root), identities=6, images_per_identity=5, size=112,
                                val_identities=4, val_pairs=20, seed=3))["files"]


def export(root: Path, mode: str, raw_input: bool, *, with_threshold: bool = True) -> Path:
    """``root/bundle_<mode>[_raw]``: the converter's bundle for the tiny model (model, data and
    ``.keras`` file are created once under ``root``)."""
    from pocketnet_tf.export.exporter import ExportConfig, run_export

    root = Path(root)
    model_path = root / "tiny.keras"
    if not model_path.exists():
        tiny_model().save(model_path)
    data = root / "data"
    files = write_data(data) if not data.exists() else {"synth_val.bin": str(data / "synth_val.bin")}
    out = root / f"bundle_{mode}{'_raw' if raw_input else ''}{'' if with_threshold else '_nothreshold'}"
    run_export(ExportConfig(
        model=str(model_path), mode=mode, out=str(out), representative=str(data),
        bin=(files["synth_val.bin"],) if with_threshold else (), num_calibration=10, num_validation=6,
        golden_count=4, raw_input=raw_input,
        # An untrained model: its verification accuracy on 20 pairs is noise, the Keras/TFLite
        # agreement (cosine thresholds, kept at their defaults) is what must hold.
        max_accuracy_drop=100.0,
    ))
    return out
