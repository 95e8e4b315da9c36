"""ArcFace / CosFace heads against references of the original formulas (spec §6.4, §9.9)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead, CosMarginHead, build_head
from tests.helpers import assert_config_round_trip

S, M = 64.0, 0.5


def original_arcface_numpy(x, kernel, labels, s=S, m=M, upper=1 + 1e-5):
    """The original's ArcFace logits (utils/losses.py, easy_margin=False), in float64 numpy.

    No epsilon in the normalisations, cosines clamped to [-1 + 1e-5, ``upper``]."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    cos = np.clip(x @ w, -1 + 1e-5, upper)
    rows = np.arange(len(labels))
    t = cos[rows, labels]
    sin_t = np.sqrt(1.0 - t**2)
    cos_tm = t * math.cos(m) - sin_t * math.sin(m)
    target = np.where(t > math.cos(math.pi - m), cos_tm, t - math.sin(math.pi - m) * m)
    out = cos.copy()
    out[rows, labels] = target
    return out * s


def cosface_numpy(x, kernel, labels, s=S, m=0.35):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    cos = np.clip(x @ w, -1 + 1e-5, 1 - 1e-5)
    out = cos.copy()
    out[np.arange(len(labels)), labels] -= m
    return out * s


def _head_with_kernel(cls, kernel, **kwargs):
    head = cls(kernel.shape[1], **kwargs)
    head.build((None, kernel.shape[0]))
    head.kernel.assign(kernel.astype(np.float32))
    return head


def _inputs_covering_both_branches(seed=0, batch=8, emb=6, classes=5):
    """Rows 0-2 point away from their class centre (cos < cos(pi - m): the fallback branch)."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(0, 0.01, (emb, classes))
    labels = rng.integers(0, classes, batch)
    x = rng.normal(0, 1, (batch, emb)) * 3.0
    for i in range(3):
        x[i] = -kernel[:, labels[i]] / np.linalg.norm(kernel[:, labels[i]]) + rng.normal(0, 0.05, emb)
    for i in range(3, 5):  # close to the centre: small angles
        x[i] = kernel[:, labels[i]] / np.linalg.norm(kernel[:, labels[i]]) + rng.normal(0, 0.2, emb)
    return x, kernel, labels


def test_arcface_matches_original_formula_in_both_branches():
    x, kernel, labels = _inputs_covering_both_branches()
    head = _head_with_kernel(ArcMarginHead, kernel)
    got = np.asarray(head(x.astype(np.float32), labels))
    want = original_arcface_numpy(x, kernel, labels)
    # The branches really are both exercised.
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    wn = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    t = (xn @ wn)[np.arange(len(labels)), labels]
    threshold = math.cos(math.pi - M)
    assert (t <= threshold).sum() == 3 and (t > threshold).sum() == 5
    # float32 cosines (~1e-7 relative) times s = 64.
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-4)
    # Non-target logits are exactly s * cos.
    mask = np.ones_like(want, bool)
    mask[np.arange(len(labels)), labels] = False
    np.testing.assert_allclose(got[mask], (S * (xn @ wn))[mask], atol=2e-4)


def test_arcface_loss_and_gradients_match_torch_reference():
    torch = pytest.importorskip("torch", reason="torch is the reference implementation (test extra)")
    x, kernel, labels = _inputs_covering_both_branches(seed=3)

    # The original in torch (no eps, upper clamp 1 + 1e-5), cross-entropy mean over the batch.
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tk = torch.tensor(kernel, dtype=torch.float64, requires_grad=True)
    tl = torch.tensor(labels)
    cos = torch.clamp((tx / tx.norm(dim=1, keepdim=True)) @ (tk / tk.norm(dim=0, keepdim=True)), -1 + 1e-5, 1 + 1e-5)
    t = cos[torch.arange(len(labels)), tl]
    cos_tm = t * math.cos(M) - torch.sqrt(1 - t**2) * math.sin(M)
    target = torch.where(t > math.cos(math.pi - M), cos_tm, t - math.sin(math.pi - M) * M)
    one_hot = torch.nn.functional.one_hot(tl, kernel.shape[1]).double()
    logits = (cos * (1 - one_hot) + target[:, None] * one_hot) * S
    loss = torch.nn.functional.cross_entropy(logits, tl)
    loss.backward()

    head = _head_with_kernel(ArcMarginHead, kernel)
    kx = tf.Variable(x.astype(np.float32))
    with tf.GradientTape() as tape:
        k_logits = head(kx, labels)
        k_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, k_logits)
    gx, gk = tape.gradient(k_loss, [kx, head.kernel.value])
    np.testing.assert_allclose(float(k_loss), loss.item(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), tx.grad.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(np.asarray(gk), tk.grad.numpy(), rtol=1e-3, atol=1e-3)


def test_arcface_clamp_fix_keeps_aligned_embeddings_finite():
    # An embedding exactly on its class centre: float32 rounding can put cos a hair above 1.
    rng = np.random.default_rng(1)
    kernel = rng.normal(0, 0.01, (16, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3])
    x = (kernel.T * 1000.0).astype(np.float32)
    head = _head_with_kernel(ArcMarginHead, kernel)
    kx = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, head(kx, labels))
    grads = tape.gradient(loss, [kx, head.kernel.value])
    assert np.isfinite(float(loss))
    assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    # The original's upper clamp of 1 + 1e-5 lets such a cosine through and sqrt(1 - t²) is NaN.
    t = np.float32(1.0000001)
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.sqrt(np.float32(1) - np.clip(t, -1 + 1e-5, 1 + 1e-5) ** 2))
    assert np.isfinite(np.sqrt(np.float32(1) - np.clip(t, -1 + 1e-5, 1 - 1e-5) ** 2))


def test_cosface_matches_reference_and_no_label_logits():
    x, kernel, labels = _inputs_covering_both_branches(seed=5)
    head = _head_with_kernel(CosMarginHead, kernel)
    np.testing.assert_allclose(np.asarray(head(x.astype(np.float32), labels)), cosface_numpy(x, kernel, labels),
                               atol=2e-4)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    wn = kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    for cls in (ArcMarginHead, CosMarginHead):
        plain = np.asarray(_head_with_kernel(cls, kernel)(x.astype(np.float32)))
        np.testing.assert_allclose(plain, S * (xn @ wn), atol=2e-4)


def test_labels_of_shape_batch_by_one_and_int64_work():
    x, kernel, labels = _inputs_covering_both_branches(seed=7)
    head = _head_with_kernel(ArcMarginHead, kernel)
    a = np.asarray(head(x.astype(np.float32), labels.astype(np.int64)[:, None]))
    np.testing.assert_allclose(a, original_arcface_numpy(x, kernel, labels), atol=2e-4)


def test_kernel_initialisation_and_config_round_trip():
    head = ArcMarginHead(1000, scale=32.0, margin=0.3)
    head.build((None, 128))
    w = np.asarray(head.kernel)
    assert w.shape == (128, 1000)
    assert abs(w.std() - 0.01) < 0.0005 and abs(w.mean()) < 0.0005
    assert_config_round_trip(head)
    assert_config_round_trip(CosMarginHead(10))
    assert build_head("cosface", 10).margin == 0.35
    assert build_head("arcface", 10, margin=0.4).margin == 0.4


@pytest.mark.parametrize(
    "ctor, message",
    [
        (lambda: ArcMarginHead(1), "num_classes must be an int >= 2, received 1"),
        (lambda: ArcMarginHead(10, margin=2.0), "margin must be in [0, pi/2), received 2.0"),
        (lambda: CosMarginHead(10, scale=0), "scale must be > 0, received 0"),
        (lambda: build_head("sphereface", 10), "unknown head 'sphereface'"),
    ],
)
def test_bad_arguments_raise(ctor, message):
    with pytest.raises(ValueError) as info:
        ctor()
    assert message in str(info.value)


@pytest.mark.parametrize("make", [lambda: ArcMarginHead(5, scale=8.0, margin=0.3), lambda: CosMarginHead(5, scale=8.0)],
                         ids=["arcface", "cosface"])
def test_layer_harness(make, tmp_path):
    from tests import helpers

    embeddings = np.random.default_rng(2).normal(size=(2, 6)).astype(np.float32)
    labels = np.array([1, 4], np.int32)
    helpers.run_layer_test(make, (embeddings, labels), tmp_path, expected_output_shape=(2, 5),
                           expected_num_trainable_weights=1, expected_num_non_trainable_weights=0)
