"""Partial FC head: the sharded loss and gradients equal the replicated head's; sampling; re-sharding.

Two replicas are two logical CPUs (tests/conftest.py). With 5 classes over 2 replicas each shard
holds 3 centres and the last one is padding, so the masking of padded columns is exercised too.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead, CosMarginHead
from pocketnet_tf.layers.partial_fc import PartialFCHead, shard_size, use_partial_fc
from tests.helpers import assert_config_round_trip, two_cpu_strategy
from tests.layers.test_margin import original_arcface_numpy

CLASSES, DIM, BATCH = 5, 6, 8


@pytest.fixture(scope="module")
def mirrored():
    strategy = two_cpu_strategy()
    assert strategy.num_replicas_in_sync == 2
    return strategy


def _inputs(seed=0, classes=CLASSES, batch=BATCH):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.01, (DIM, classes)).astype(np.float32)
    x = rng.normal(0, 1, (batch, DIM)).astype(np.float32)
    y = rng.permutation(np.arange(batch) % classes).astype(np.int32)
    x[0] = kernel[:, y[0]] / np.linalg.norm(kernel[:, y[0]]) * 2.0  # one confident row (large target logit)
    return x, y, kernel


def _replicated_reference(cls, x, y, kernel, **kwargs):
    """Mean CE of the replicated head and its gradients w.r.t. the embeddings and the kernel."""
    head = cls(kernel.shape[1], **kwargs)
    head.build((None, DIM))
    head.kernel.assign(kernel)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        logits = head(xt, y)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
    gx, gk = tape.gradient(loss, [xt, head.kernel])
    return float(loss), np.asarray(gx), np.asarray(gk)


def _pfc(kernel, strategy=None, **kwargs):
    def make():
        head = PartialFCHead(kernel.shape[1], **kwargs)
        head.build((None, DIM))
        head.assign_full(head.kernel, kernel)
        return head

    if strategy is None:
        return make()
    with strategy.scope():
        return make()


@pytest.mark.parametrize("kind, cls", [("arcface", ArcMarginHead), ("cosface", CosMarginHead)])
def test_one_shard_equals_replicated_head(kind, cls):
    x, y, kernel = _inputs()
    loss, gx, gk = _replicated_reference(cls, x, y, kernel)
    head = _pfc(kernel, kind=kind)
    assert (head.num_shards, head.shard_size) == (1, CLASSES)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        value = head(xt, y, training=True)
    px, pk = tape.gradient(value, [xt, head.kernel])
    np.testing.assert_allclose(float(value), loss, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(px), gx, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(pk).T, gk, rtol=1e-4, atol=1e-3 * np.abs(gk).max())


def _run_sharded(strategy, head, x, y, step=0, training=True):
    """The head under ``strategy``: per replica (loss share, d loss/d local embeddings,
    d loss/d shard, shard-local sampled indices or None)."""
    per_replica = len(x) // strategy.num_replicas_in_sync

    def replica_fn():
        ctx = tf.distribute.get_replica_context()
        rid = ctx.replica_id_in_sync_group
        xs = tf.constant(x)[rid * per_replica: (rid + 1) * per_replica]
        ys = tf.constant(y)[rid * per_replica: (rid + 1) * per_replica]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            value = head(xs, ys, step=step, training=training)
        gx, gk = tape.gradient(value, [xs, head.kernel])
        index = head.select_centres(ctx.all_gather(ys, axis=0), rid, step)
        return value, gx, tf.convert_to_tensor(gk), index

    out = strategy.run(tf.function(replica_fn))
    return [[np.asarray(t) for t in strategy.experimental_local_results(part)] for part in out]


def test_two_shards_loss_and_gradients_equal_replicated_head(mirrored):
    x, y, kernel = _inputs(seed=1)
    loss, gx, gk = _replicated_reference(ArcMarginHead, x, y, kernel)
    head = _pfc(kernel, mirrored)
    assert (head.num_shards, head.shard_size) == (2, shard_size(CLASSES, 2)) == (2, 3)
    values, gxs, gks, _ = _run_sharded(mirrored, head, x, y)
    # Each replica returns loss / replicas (as a keras Loss does), and both know the whole loss.
    np.testing.assert_allclose(values, [loss / 2, loss / 2], rtol=1e-6)
    np.testing.assert_allclose(np.concatenate(gxs), gx, rtol=1e-4, atol=1e-7)
    full = np.concatenate(gks)  # [2·3, D]: rows of the two shards, the padded one last
    np.testing.assert_allclose(full[:CLASSES].T, gk, rtol=1e-4, atol=1e-3 * np.abs(gk).max())
    assert np.all(full[CLASSES:] == 0.0)  # padding takes no part


def _ce_over(x, y, kernel, columns):
    """Mean ArcFace CE (float64) over the given class columns only (they contain every label)."""
    logits = original_arcface_numpy(x.astype(np.float64), kernel.astype(np.float64), y, upper=1 - 1e-5)
    sub = logits[:, columns]
    target = logits[np.arange(len(y)), y]
    top = sub.max(axis=1)
    return float(np.mean(np.log(np.exp(sub - top[:, None]).sum(axis=1)) + top - target))


def test_sampling_keeps_positives_and_is_the_exact_loss_over_the_sampled_centres(mirrored):
    classes = 40
    x, y, kernel = _inputs(seed=2, classes=classes)
    head = _pfc(kernel, mirrored, kind="arcface", sample_rate=0.5, seed=7)
    seen = []
    for step in (0, 1):
        values, _, gks, index = _run_sharded(mirrored, head, x, y, step=step)
        columns = np.concatenate([idx + r * head.shard_size for r, idx in enumerate(index)])
        assert set(y) <= set(columns)  # every positive of the global batch is scored
        assert [len(i) for i in index] == [math.ceil(0.5 * 20)] * 2 and len(set(columns)) == len(columns)
        np.testing.assert_allclose(sum(values), _ce_over(x, y, kernel, columns), rtol=1e-5)
        # Unsampled centres get no gradient; sampled ones do.
        rows = np.concatenate(gks)
        norms = np.linalg.norm(rows, axis=1)
        assert np.all(norms[np.setdiff1d(np.arange(classes), columns)] == 0) and np.all(norms[columns] > 0)
        seen.append(frozenset(columns))
    assert seen[0] != seen[1]  # the draw changes with the step
    # Evaluation scores every centre: the loss of the replicated head.
    values, _, _, _ = _run_sharded(mirrored, head, x, y, training=False)
    np.testing.assert_allclose(sum(values), _ce_over(x, y, kernel, np.arange(classes)), rtol=1e-5)


def test_sampling_more_positives_than_the_rate_keeps_them_all():
    x, y, kernel = _inputs(seed=3, classes=10, batch=8)
    head = _pfc(kernel, sample_rate=0.1)
    index = np.asarray(head.select_centres(tf.constant(y), 0, 5))
    assert set(index) == set(y) and list(index) == sorted(index)


def test_checkpoint_entries_are_the_full_matrices_and_reshard(mirrored):
    rng = np.random.default_rng(4)
    kernel = rng.normal(size=(DIM, CLASSES)).astype(np.float32)
    momentum = rng.normal(size=(DIM, CLASSES)).astype(np.float32)
    two = _pfc(kernel, mirrored)
    two.assign_full(two.momentum, momentum)
    shards = [np.asarray(v) for v in two.kernel.value.values]
    np.testing.assert_array_equal(shards[0], kernel[:, :3].T)
    np.testing.assert_array_equal(shards[1][:2], kernel[:, 3:].T)
    store = {}
    two.save_own_variables(store)
    np.testing.assert_array_equal(store["0"], kernel)
    np.testing.assert_array_equal(store["1"], momentum)
    one = _pfc(np.zeros_like(kernel))
    one.load_own_variables(store)
    np.testing.assert_array_equal(np.asarray(one.kernel), kernel.T)
    np.testing.assert_array_equal(np.asarray(one.momentum), momentum.T)
    with pytest.raises(ValueError, match="centres and their momentum"):
        one.load_own_variables({"0": kernel})
    with pytest.raises(ValueError, match=r"expected a \[6, 5\] matrix"):
        one.load_own_variables({"0": kernel[:, :4], "1": momentum[:, :4]})


def test_hidden_from_the_keras_optimizer_and_config_round_trip():
    head = _pfc(np.zeros((DIM, CLASSES), np.float32), kind="cosface", sample_rate=0.3, seed=2)
    assert head.trainable_weights == [] and len(head.non_trainable_weights) == 2
    assert head.margin == 0.35
    assert_config_round_trip(head)


def test_choice_and_bad_arguments():
    assert not use_partial_fc("auto", 1) and use_partial_fc("auto", 2) and use_partial_fc("auto", 1, 0.5)
    assert use_partial_fc("auto", 1, resuming_sharded=True) and not use_partial_fc("none", 4)
    with pytest.raises(ValueError, match="needs the Partial FC head"):
        use_partial_fc("none", 2, 0.5)
    with pytest.raises(ValueError, match="sample_rate must be in"):
        PartialFCHead(5, sample_rate=0.0)
    with pytest.raises(ValueError, match="unknown head"):
        PartialFCHead(5, kind="softmax")
