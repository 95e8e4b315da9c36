"""Two replicas (logical CPUs) equal one device for the same global batch (spec §9.22).

BatchNorm normalises with per-replica batch statistics (the original's DDP without SyncBN), so
each global batch here is one half-batch repeated: every replica sees the same examples, and the
one-device run sees them twice, which leaves the batch statistics, the mean loss and every
gradient unchanged. What distribution touches is then checked exactly: the 1/replicas loss
scaling, the cross-replica sums of g (virtual step) and d_w' (its norm sets eps) inside the
architect, the clipping after the sum (a small clip norm keeps it active), both optimisers.
Everything runs in float64: the finite-difference Hessian term divides float32 round-off of
sums taken in another order by 2 eps and would blur the comparison.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.factory import compiled_search_model, labelled_images, tiny_search_network, weight_values

STEPS = 2
HALF = 3  # examples per replica


pytestmark = pytest.mark.usefixtures("float64")


def _dataset():
    pairs = []
    for step in range(STEPS):
        xt, yt = labelled_images(HALF, seed=10 + step, size=16, dtype="float64")
        xv, yv = labelled_images(HALF, seed=20 + step, size=16, dtype="float64")
        pairs.append(((np.concatenate([xt, xt]), np.concatenate([yt, yt])),
                      (np.concatenate([xv, xv]), np.concatenate([yv, yv]))))
    return tf.data.Dataset.from_generator(
        lambda: iter(pairs),
        output_signature=((tf.TensorSpec((2 * HALF, 16, 16, 3), tf.float64), tf.TensorSpec((2 * HALF,), tf.int32)),) * 2,
    )


def _run(strategy, **kwargs):
    with strategy.scope():
        net = tiny_search_network()
        model = compiled_search_model(net, lr=0.05, clip_norm=0.05, alpha_lr=0.01, **kwargs)
    history = model.fit(_dataset(), epochs=1, steps_per_epoch=STEPS, verbose=0)
    state = weight_values([*net.variables, *model.optimizer.variables, *model.alpha_optimizer.variables])
    return state, history.history, weight_values(net.alphas)


# Slow: compiles the whole bi-level step for one device and for two replicas (1-2 min each here).
@pytest.mark.slow
@pytest.mark.parametrize("kwargs", [dict(second_order=True), dict(second_order=False, original=True)],
                         ids=["second_order_textbook", "first_order_original"])
def test_two_replicas_equal_one_device(kwargs):
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2, "tests/conftest.py should create two logical CPUs"
    one_state, one_logs, one_alphas = _run(tf.distribute.get_strategy(), **kwargs)
    # ReductionToOneDevice: the same sums without collective ops. TF caches collective instances
    # per process, and a second MirroredStrategy reusing their keys for other shapes aborts
    # ("Shape mismatch in the collective instance"), e.g. in a later test of the same pytest run.
    mirrored = tf.distribute.MirroredStrategy([d.name for d in devices[:2]],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    two_state, two_logs, _ = _run(mirrored, **kwargs)
    assert len(one_state) == len(two_state)
    for a, b in zip(one_state, two_state):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
    for key in ("loss", "alpha_loss", "accuracy"):
        assert two_logs[key][-1] == pytest.approx(one_logs[key][-1], rel=1e-9)
    # The step did move the alphas (so equality is not trivial).
    start = weight_values(tiny_search_network().alphas)
    assert max(float(np.abs(a - s).max()) for a, s in zip(one_alphas, start)) > 1e-3
