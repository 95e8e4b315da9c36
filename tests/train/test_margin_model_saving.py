"""A saved MarginModel loads compiled: same optimiser, state and clipped variables, no Keras warning."""

import warnings

import keras
import numpy as np

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.distiller import MarginModel
from pocketnet_tf.train.optimizer import TorchSGD
from tests.factory import dataset, labelled_images, tiny_backbone, weight_values


def _trained(tmp_path):
    model = MarginModel(tiny_backbone(), ArcMarginHead(3, scale=8.0, margin=0.3))
    model.compile(optimizer=TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=5e-4, clip_norm=0.01))
    x, y = labelled_images()
    model.fit(dataset(x, y, 4), epochs=1, verbose=0, shuffle=False)
    path = tmp_path / "margin_model.keras"
    model.save(path)
    return model, path, (x, y)


def test_loading_a_training_model_compiles_it_without_a_warning(tmp_path):
    model, path, (x, y) = _trained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = keras.saving.load_model(path)
    assert not [w for w in caught if "compile" in str(w.message)], [str(w.message) for w in caught]
    assert isinstance(loaded.optimizer, TorchSGD)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    # Optimiser state (iterations, momentum buffers) came back, and only the backbone is clipped.
    assert int(loaded.optimizer.iterations) == 4
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
    assert loaded.optimizer._clip_keys == {loaded.optimizer._var_key(v) for v in loaded.backbone.trainable_variables}
    # Training on from the file equals training on in memory (momentum and clipping included).
    model.fit(dataset(x, y, 4), epochs=1, verbose=0, shuffle=False)
    loaded.fit(dataset(x, y, 4), epochs=1, verbose=0, shuffle=False)
    for a, b in zip(weight_values(model.weights), weight_values(loaded.weights)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
