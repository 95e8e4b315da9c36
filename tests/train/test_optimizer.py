"""TorchSGD against torch.optim.SGD, and clipping of the backbone only (spec §6.5)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from pocketnet_tf.layers.margin import ArcMarginHead
from pocketnet_tf.train.distiller import MarginModel
from pocketnet_tf.train.optimizer import TorchSGD
from pocketnet_tf.train.schedules import EpochStepDecay, epoch_factor
from tests.factory import labelled_images, tiny_backbone

torch = pytest.importorskip("torch", reason="torch.optim.SGD is the reference (test extra)")

#: Repeated shapes: a traced update stacks the variables of one shape (ShapeGroups).
SHAPES = [(3, 4), (5,), (2, 2, 1), (3, 4), (5,)]
STEPS_PER_EPOCH = 3
MILESTONES = [2]  # LR x0.1 from epoch 1 (step 3) on


def _gradients(steps, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.normal(0, 1, s).astype(np.float32) for s in SHAPES] for _ in range(steps)]


def _initial(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1, s).astype(np.float32) for s in SHAPES]


def _run_keras(optimizer, grads_per_step, traced=False):
    """Eagerly, or (``traced``) through one ``tf.function`` as in ``model.fit``, where the update
    is TensorFlow's fused ApplyMomentum kernel."""
    variables = [keras.Variable(w) for w in _initial()]

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    if traced:
        apply = tf.function(apply)
    trajectory = []
    for grads in grads_per_step:
        apply([tf.constant(g) for g in grads])
        trajectory.append([np.array(v) for v in variables])
    return trajectory


def _run_torch(grads_per_step, weight_decay, nesterov=False):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in _initial()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=weight_decay, nesterov=nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: epoch_factor(e, MILESTONES))
    trajectory = []
    for step, grads in enumerate(grads_per_step):
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        opt.step()
        if (step + 1) % STEPS_PER_EPOCH == 0:
            sched.step()  # the original steps LambdaLR at each epoch end
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
@pytest.mark.parametrize("weight_decay, nesterov", [(5e-4, False), (0.05, False), (5e-4, True)])
def test_matches_torch_sgd_over_an_lr_drop(weight_decay, nesterov, traced):
    grads = _gradients(7)
    schedule = EpochStepDecay(0.1, STEPS_PER_EPOCH, MILESTONES)
    optimizer = TorchSGD(schedule, momentum=0.9, weight_decay=weight_decay, nesterov=nesterov)
    ours = _run_keras(optimizer, grads, traced=traced)
    ref = _run_torch(grads, weight_decay, nesterov)
    for step, (a, b) in enumerate(zip(ours, ref)):
        for va, vb in zip(a, b):
            np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-6, err_msg=f"step {step}")
    momentum = [np.array(m) for m in optimizer.momentums]
    assert np.abs(momentum[0]).max() > 0  # the buffers live in the optimiser's own variables


def test_traced_update_is_one_fused_kernel_per_variable():
    optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=5e-4)
    variables = [keras.Variable(w) for w in _initial()]
    optimizer.build(variables)
    graph = tf.function(lambda gs: optimizer.apply_gradients(zip(gs, variables))).get_concrete_function(
        [tf.TensorSpec(s, tf.float32) for s in SHAPES]).graph
    types = [op.type for op in graph.get_operations()]
    assert types.count("ResourceApplyMomentum") == len(SHAPES)
    # The coupled decay is computed once per distinct shape, the learning rate cast once.
    arithmetic = [op for op in graph.get_operations() if op.type in ("Mul", "AddV2") and op.name.startswith("torch_sgd/")]
    assert len(arithmetic) == 2 * len(set(SHAPES))
    assert types.count("Cast") <= 1


def test_traced_clipping_matches_tf_clip_by_global_norm():
    variables = [keras.Variable(w) for w in _initial()]
    grads = [tf.constant(10 * g) for g in _gradients(1)[0]]
    optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=0.0, clip_norm=1.5)
    optimizer.build(variables)
    optimizer.set_clip_variables(variables[:4])  # the last one is outside the clipped group
    tf.function(lambda gs: optimizer.apply_gradients(zip(gs, variables)))(grads)
    clipped, _ = tf.clip_by_global_norm(grads[:4], 1.5)
    expected = [w - 0.1 * g for w, g in zip(_initial(), [c.numpy() for c in clipped] + [grads[4].numpy()])]
    for v, e in zip(variables, expected):
        np.testing.assert_allclose(np.array(v), e, rtol=1e-5, atol=1e-6)


def test_keras_sgd_differs_from_torch_after_the_lr_drop():
    # Why TorchSGD exists: Keras folds the LR into the velocity. Identical while the LR is
    # constant, different once it drops (no weight decay on either side here).
    grads = _gradients(5)
    keras_traj = _run_keras(keras.optimizers.SGD(EpochStepDecay(0.1, STEPS_PER_EPOCH, MILESTONES), momentum=0.9), grads)
    ref = _run_torch(grads, weight_decay=0.0)
    np.testing.assert_allclose(keras_traj[2][0], ref[2][0], rtol=1e-5, atol=1e-6)
    assert np.abs(keras_traj[3][0] - ref[3][0]).max() > 1e-3


def test_optimizer_config_round_trip():
    opt = TorchSGD(EpochStepDecay(0.2, 10, [3, 5]), momentum=0.8, weight_decay=1e-3, clip_norm=2.0)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert isinstance(again, TorchSGD)
    assert (again.momentum, again.coupled_weight_decay, again.clip_norm) == (0.8, 1e-3, 2.0)
    assert again.learning_rate is not None and again.weight_decay is None  # no decoupled decay
    with pytest.raises(ValueError, match="global_clipnorm is not supported"):
        TorchSGD(0.1, global_clipnorm=1.0)


def _manual_step(model, x, y, lr, weight_decay, clip_norm):
    """Expected variables after one TorchSGD step from zero momentum: w - lr·(g' + λ·w)."""
    backbone_vars = model.backbone.trainable_variables
    head_vars = model.head.trainable_variables
    with tf.GradientTape() as tape:
        loss, _, _ = model.compute_losses(x, y, training=True)
    g_backbone, g_head = tape.gradient(loss, [backbone_vars, head_vars])
    norm = float(tf.linalg.global_norm(g_backbone))
    factor = min(1.0, clip_norm / norm) if clip_norm else 1.0
    expected = {}
    for v, g in zip(backbone_vars, g_backbone):
        expected[v.path] = np.array(v) - lr * (np.array(g) * factor + weight_decay * np.array(v))
    for v, g in zip(head_vars, g_head):
        expected[v.path] = np.array(v) - lr * (np.array(g) + weight_decay * np.array(v))
    return expected, norm, float(tf.linalg.global_norm(g_head))


@pytest.mark.parametrize("clip_norm", [0.01, None])
def test_clipping_applies_to_the_backbone_only(clip_norm):
    lr, wd = 0.1, 5e-4
    x, y = labelled_images(8)
    model = MarginModel(tiny_backbone(), ArcMarginHead(3))
    model.compile(optimizer=TorchSGD(lr, momentum=0.9, weight_decay=wd, clip_norm=clip_norm))
    expected, bb_norm, head_norm = _manual_step(model, x, y, lr, wd, clip_norm)
    assert bb_norm > 0.1 and head_norm > 0.1  # both groups would be clipped if the head were included
    model.train_on_batch(x, y)
    # Every trainable variable (conv, BN γ/β, PReLU slopes, dense, ArcFace kernel) got the step,
    # weight decay included.
    assert {v.path for v in model.trainable_variables} == set(expected)
    assert any("prelu" in p for p in expected) and any("gamma" in p for p in expected)
    for v in model.trainable_variables:
        np.testing.assert_allclose(np.array(v), expected[v.path], rtol=1e-4, atol=1e-6, err_msg=v.path)


def test_traced_update_without_a_strategy_skips_the_update_context(monkeypatch):
    """Without a strategy the fused updates are made directly: no per-variable update context to
    trace (the search step's 766 weights). Under a strategy each still goes through its update:
    tests/train/test_distribute.py and tests/search/test_distribute.py show two replicas equal one
    device."""
    from tensorflow.python.distribute import distribute_lib

    calls = []
    original = distribute_lib.StrategyExtendedV2.update

    def spy(self, var, fn, *args, **kwargs):
        calls.append(var.name)
        return original(self, var, fn, *args, **kwargs)

    monkeypatch.setattr(distribute_lib.StrategyExtendedV2, "update", spy)
    grads = _gradients(2)
    optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=5e-4)
    ours = _run_keras(optimizer, grads, traced=True)
    assert calls == []
    for a, b in zip(ours, _run_torch(grads, 5e-4)):
        for va, vb in zip(a, b):
            np.testing.assert_allclose(va, vb, rtol=1e-5, atol=1e-6)
    # The spy sees the strategy's updates where they happen (the eager path keeps them).
    _run_keras(TorchSGD(0.1, momentum=0.9, weight_decay=5e-4), grads[:1], traced=False)
    assert len(calls) == len(SHAPES)
