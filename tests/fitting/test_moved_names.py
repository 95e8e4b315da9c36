"""The shared fitting pieces moved from ``train/`` to ``fitting/``: old import paths and training
models saved before the move still work.

A saved ``.keras`` file names the optimiser by its registered name (``pocketnet_tf>TorchSGD``) and
by the module it was defined in; files written before the move say ``pocketnet_tf.train.optimizer``.
"""

import json
import zipfile

import keras
import numpy as np

from pocketnet_tf.fitting import checkpoints, guard, loop, precision, torch_sgd
from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.distiller import MarginModel
from tests.factory import dataset, labelled_images, tiny_backbone

_OLD_MODULE = "pocketnet_tf.train.optimizer"


def test_old_import_paths_name_the_moved_objects():
    from pocketnet_tf.train import callbacks as old_callbacks
    from pocketnet_tf.train import guard as old_guard
    from pocketnet_tf.train import loop as old_loop
    from pocketnet_tf.train import optimizer as old_optimizer
    from pocketnet_tf.train import precision as old_precision
    import pocketnet_tf.train as train

    assert old_optimizer.TorchSGD is torch_sgd.TorchSGD and train.TorchSGD is torch_sgd.TorchSGD
    assert old_optimizer.all_finite is torch_sgd.all_finite
    for name in ("PRECISIONS", "check_precision", "float32_copy", "needs_loss_scaling", "optimizer_options",
                 "precision_scope"):
        assert getattr(old_precision, name) is getattr(precision, name), name
    for name in ("EXIT_DIVERGED", "DivergenceError", "DivergenceGuard", "check_finite_weights", "finite_step",
                 "first_non_finite"):
        assert getattr(old_guard, name) is getattr(guard, name), name
    for name in ("StopAfterEpoch", "exact_epoch", "fit_epochs"):
        assert getattr(old_loop, name) is getattr(loop, name), name
    for name in ("STATE_FILE", "ResumableCheckpoint", "read_checkpoint_state", "restore_checkpoint"):
        assert getattr(old_callbacks, name) is getattr(checkpoints, name), name
    assert old_callbacks.StopAfterEpoch is loop.StopAfterEpoch


def _with_old_module_name(src, dst):
    """Copies a ``.keras`` file, writing the optimiser's module as a pre-move file has it."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                optimizer = config["compile_config"]["optimizer"]
                assert optimizer["registered_name"] == "pocketnet_tf>TorchSGD", optimizer
                assert optimizer["module"] == "pocketnet_tf.fitting.torch_sgd", optimizer
                optimizer["module"] = _OLD_MODULE
                data = json.dumps(config).encode()
            zout.writestr(item, data)


def test_a_training_model_saved_before_the_move_loads_with_its_optimiser(tmp_path):
    model = MarginModel(tiny_backbone(), ArcMarginHead(3, scale=8.0, margin=0.3))
    model.compile(optimizer=torch_sgd.TorchSGD(learning_rate=0.1, momentum=0.9, weight_decay=5e-4, clip_norm=0.01))
    x, y = labelled_images()
    model.fit(dataset(x, y, 4), epochs=1, verbose=0, shuffle=False)
    model.save(tmp_path / "now.keras")
    _with_old_module_name(tmp_path / "now.keras", tmp_path / "before.keras")

    loaded = keras.saving.load_model(tmp_path / "before.keras")
    assert type(loaded.optimizer) is torch_sgd.TorchSGD
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 4
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
