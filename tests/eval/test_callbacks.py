"""VerificationCallback inside a real (tiny) fit: cadence, logs dict, TensorBoard scalars, best value."""

from __future__ import annotations

import numpy as np
import pytest

from pocketnet_tf.data import preprocess
from pocketnet_tf.eval.callbacks import VerificationCallback
from pocketnet_tf.eval.embedders import KerasEmbedder
from pocketnet_tf.eval.verification import evaluate_bin
from tests.eval.synthetic_sets import write_toy_bin
from tests.factory import tiny_embedder


def _read_scalars(log_dir):
    import tensorflow as tf

    found = {}
    for file in sorted(log_dir.rglob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(file)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                found.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return found


def test_callback_during_fit(tmp_path):
    import keras

    bin_path = write_toy_bin(tmp_path / "toy.bin")
    backbone = tiny_embedder(seed=1)
    model = keras.Sequential([backbone, keras.layers.Dense(4)])
    model.backbone = backbone  # the shape of a margin-head / distillation wrapper
    model.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = preprocess.normalize(rng.integers(0, 256, (12, 112, 112, 3)))
    y = rng.integers(0, 4, 12)
    callback = VerificationCallback([bin_path], every_n_steps=2, every_n_epochs=1, n_folds=5,
                                    batch_size=8, log_dir=tmp_path / "tb")
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[callback])

    # 3 steps per epoch: evaluations at global steps 2, 3 (epoch end), 4, 6 (6 is also an epoch end:
    # not repeated).
    assert [h["step"] for h in callback.history] == [2, 3, 4, 6]
    # The weights change between evaluations, and each evaluation sees the current ones.
    assert len({h["xnorm"] for h in callback.history}) == 4
    # The last evaluation is the trained backbone's real accuracy on the set.
    direct = evaluate_bin(KerasEmbedder(backbone), bin_path, n_folds=5)
    assert callback.history[-1]["accuracy"] == direct.accuracy
    assert callback.history[-1]["xnorm"] == pytest.approx(direct.xnorm, rel=1e-6)
    # Best value and its step.
    best = max(h["accuracy"] for h in callback.history)
    assert callback.best["toy"][0] == best
    assert callback.best["toy"][1] == next(h["step"] for h in callback.history if h["accuracy"] == best)
    # Epoch logs carry the values to History.
    assert history.history["toy_accuracy"] == [callback.history[1]["accuracy"], callback.history[3]["accuracy"]]
    assert history.history["toy_best_accuracy"][-1] == best
    # TensorBoard scalars at the global steps.
    scalars = _read_scalars(tmp_path / "tb")
    assert [s for s, _ in scalars["verification/toy/accuracy"]] == [2, 3, 4, 6]
    np.testing.assert_allclose([v for _, v in scalars["verification/toy/accuracy"]],
                               [h["accuracy"] for h in callback.history], rtol=1e-6)
    assert set(scalars) >= {"verification/toy/xnorm", "verification/toy/accuracy_std", "verification/toy/best_accuracy"}


def test_callback_arguments(tmp_path):
    with pytest.raises(ValueError, match="every_n_steps > 0 or every_n_epochs > 0"):
        VerificationCallback([tmp_path / "x.bin"], every_n_steps=0, every_n_epochs=0)
    with pytest.raises(ValueError, match="at least one"):
        VerificationCallback([])
