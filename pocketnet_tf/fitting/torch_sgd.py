"""SGD with PyTorch semantics, as the original trains (spec §6.5).

Keras' own ``SGD`` differs from ``torch.optim.SGD`` in two ways that change the numbers:

1. ``weight_decay`` in Keras 3 is decoupled (AdamW style: ``w -= lr·λ·w`` outside the momentum);
   PyTorch adds ``λ·w`` to the gradient *before* the momentum buffer.
2. Keras folds the learning rate into the velocity (``v = μ·v − lr·g``); PyTorch accumulates raw
   gradients (``b = μ·b + g``) and multiplies by the *current* learning rate at update time.
   Right after a learning-rate drop the two take different steps.

:class:`TorchSGD` reproduces PyTorch (dampening 0):
``g ← g + λ·w;  b ← μ·b + g;  w ← w − lr·b`` (Nesterov: ``w ← w − lr·(g + μ·b)``).

It also clips, by global L2 norm, the gradients of one group of variables (the backbone; the
margin head is not clipped in the original) *after* the gradients have been summed over replicas
and *before* the weight decay is added — the original's order (clip after DDP averaging, decay
inside ``optimizer.step``). Clipping inside the train step instead would clip each replica's
partial gradient under ``tf.distribute``.

Mixed precision (``dynamic_loss_scale=True``, for float16): the loss is multiplied by a dynamic
scale before differentiation; after the cross-replica sum the gradients are divided by it, so
clipping sees the true (unscaled) gradient. A step whose summed gradient has a NaN/Inf changes
no weight and no momentum buffer and halves the scale; ``growth_interval`` finite steps in a row
double it (Keras' ``LossScaleOptimizer`` rule). The step still counts in ``iterations``: the
global step is the data position, which resume and the per-step LR schedule rely on (Keras'
wrapper leaves its inner counter behind on skipped steps, and it would hide this optimiser's
clipping group). Every step's finiteness is checked on the summed gradient, so all replicas
take the same decision.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pocketnet_tf.fitting.shape_groups import ShapeGroups


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (inside ``Strategy.extended.update``:
    the current replica's component)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class TorchSGD(keras.optimizers.Optimizer):
    """``torch.optim.SGD`` (momentum, coupled L2 weight decay) plus backbone-only gradient clipping.

    Args:
      learning_rate: float or a ``LearningRateSchedule`` (e.g.
        :class:`pocketnet_tf.train.schedules.EpochStepDecay`), evaluated at the current iteration.
      momentum: ``μ`` (0.9 in the original).
      weight_decay: ``λ``, added to every gradient as ``λ·w`` before momentum (5e-4). Not the
        decoupled Keras weight decay.
      nesterov: Nesterov momentum as in PyTorch.
      clip_norm: if set, the gradients of :attr:`clip_variables` are scaled so that their global
        L2 norm is at most this value (5 in the original). The model assigns the group (its
        backbone's trainable variables) when compiled; until then nothing is clipped.
      dynamic_loss_scale: scale the loss dynamically and skip overflowing steps (float16 mixed
        precision; see the module doc).
      initial_loss_scale: the first loss scale (2^15, as Keras).
      growth_interval: finite steps after which the scale doubles (2000, as Keras).
      name: optimizer name.
    """

    def __init__(self, learning_rate=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False, clip_norm=None,
                 dynamic_loss_scale=False, initial_loss_scale=2.0 ** 15, growth_interval=2000,
                 name="torch_sgd", **kwargs):
        for key in ("clipnorm", "clipvalue", "global_clipnorm", "use_ema", "gradient_accumulation_steps"):
            if kwargs.get(key):
                raise ValueError(f"TorchSGD: {key} is not supported (received {kwargs[key]!r}); use clip_norm")
            kwargs.pop(key, None)
        kwargs.pop("ema_momentum", None)
        kwargs.pop("ema_overwrite_frequency", None)
        # The base class' weight_decay is the decoupled kind: keep it off and apply ours in update_step.
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        momentum = float(momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"TorchSGD: momentum must be in [0, 1), received {momentum!r}")
        if weight_decay is None or float(weight_decay) < 0:
            raise ValueError(f"TorchSGD: weight_decay must be >= 0, received {weight_decay!r}")
        if clip_norm is not None and not float(clip_norm) > 0:
            raise ValueError(f"TorchSGD: clip_norm must be > 0 or None, received {clip_norm!r}")
        if nesterov and momentum == 0.0:
            raise ValueError("TorchSGD: nesterov momentum requires momentum > 0")
        self.momentum = momentum
        self.coupled_weight_decay = float(weight_decay)
        self.nesterov = bool(nesterov)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        if not float(initial_loss_scale) >= 1 or int(growth_interval) < 1:
            raise ValueError(f"TorchSGD: initial_loss_scale must be >= 1 and growth_interval >= 1, received "
                             f"{initial_loss_scale!r} and {growth_interval!r}")
        self.dynamic_loss_scale = bool(dynamic_loss_scale)
        self.initial_loss_scale = float(initial_loss_scale)
        self.growth_interval = int(growth_interval)
        self._clip_keys = None

    # -- the clipped group --------------------------------------------------------------------

    def set_clip_variables(self, variables) -> None:
        """Names the variables whose gradients are clipped together (the backbone's)."""
        self._clip_keys = {self._var_key(v) for v in variables}

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = []
        if self.momentum:
            self.momentums = [self.add_variable_from_reference(v, name="momentum") for v in variables]
        if self.dynamic_loss_scale:
            # Identical on every replica (set from the summed gradient): keep the first's write.
            self.loss_scale = self.add_variable(
                (), initializer=keras.initializers.Constant(self.initial_loss_scale), dtype="float32",
                aggregation="only_first_replica", name="loss_scale")
            self.good_steps = self.add_variable((), initializer="zeros", dtype="int64",
                                                aggregation="only_first_replica", name="good_steps")

    # -- loss scaling ---------------------------------------------------------------------------

    def scale_loss(self, loss):
        if not self.dynamic_loss_scale:
            return super().scale_loss(loss)
        return loss * tf.cast(self.loss_scale.value, loss.dtype)

    def _next_loss_scale(self, finite):
        """``(scale, good_steps)`` after this step: halved on an overflow, doubled after
        ``growth_interval`` finite steps in a row."""
        good = tf.convert_to_tensor(self.good_steps.value) + 1
        grown = good >= self.growth_interval
        factor = tf.where(finite, tf.where(grown, 2.0, 1.0), 0.5)
        scale = tf.maximum(tf.convert_to_tensor(self.loss_scale.value) * factor, 1.0)
        return scale, tf.where(finite & ~grown, good, tf.zeros_like(good))

    def _constant(self, value, dtype):
        """A scalar constant; within one update step, one per (value, dtype) instead of one per
        variable (the search network has 1,532 weights: thousands of graph nodes to trace)."""
        cache = self.__dict__.get("_step_constants")
        if cache is None:
            return tf.constant(value, dtype)
        key = (value, tf.as_dtype(dtype))
        if key not in cache:
            cache[key] = tf.constant(value, dtype)
        return cache[key]

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Set through __dict__: a plain cache, not state for the tracking/checkpoint machinery.
        self.__dict__["_step_constants"] = {} if tf.inside_function() else None
        try:
            self._update_all(grads, trainable_variables, learning_rate)
        finally:
            self.__dict__["_step_constants"] = None

    def _update_all(self, grads, trainable_variables, learning_rate):
        # Same as Keras' TF implementation (sum over replicas, then one update per variable),
        # with unscaling and the clipping inserted between the two.
        trainable_variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        finite = None
        if self.dynamic_loss_scale:
            scale = tf.convert_to_tensor(self.loss_scale.value)
            grads_and_vars = [(g if g is None else g / tf.cast(scale, g.dtype), v) for g, v in grads_and_vars]
            finite = all_finite([g for g, _ in grads_and_vars])
        if self.clip_norm is not None and self._clip_keys:
            grads_and_vars = self._clip_group(grads_and_vars)
        if finite is None and self.momentum and tf.inside_function():
            # Traced (the usual case): coupled decay on the gradients stacked by shape, then one
            # fused ApplyMomentum per variable -- two graph nodes per variable instead of eight.
            grads_and_vars = self._coupled_decay(grads_and_vars)
            tf.__internal__.distribute.interim.maybe_merge_call(
                self._fused_distributed_update, self._distribution_strategy, grads_and_vars, learning_rate
            )
            return
        if finite is None:
            tf.__internal__.distribute.interim.maybe_merge_call(
                self._distributed_tf_update_step, self._distribution_strategy, grads_and_vars, learning_rate
            )
            return
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._guarded_distributed_update, self._distribution_strategy, grads_and_vars, learning_rate, finite,
            self._next_loss_scale(finite),
        )

    def _guarded_distributed_update(self, distribution, grads_and_vars, learning_rate, finite, next_scale):
        # As Keras' _distributed_tf_update_step, with the step's finiteness passed to every update.
        for grad, var in grads_and_vars:
            distribution.extended.update(var, self._guarded_update_step, args=(grad, learning_rate, finite),
                                         group=False)
        for var, value in zip((self.loss_scale, self.good_steps), next_scale):
            distribution.extended.update(var.value, lambda v, x: v.assign(x), args=(value,), group=False)

    def _guarded_update_step(self, variable, gradient, learning_rate, finite):
        self.update_step(gradient, variable, learning_rate, finite=finite)

    def _clip_group(self, grads_and_vars):
        """``tf.clip_by_global_norm`` of the clipped group's gradients, with the norm and the
        scaling computed once per shape (:class:`ShapeGroups`) instead of once per variable."""
        positions = [i for i, (g, v) in enumerate(grads_and_vars)
                     if g is not None and self._var_key(v) in self._clip_keys]
        if not positions:
            return grads_and_vars
        grads = [grads_and_vars[i][0] for i in positions]
        groups = ShapeGroups(grads)
        stacked = groups.stack(grads)
        norm = tf.sqrt(groups.sum_of_squares_stacked(stacked, tf.float32))
        clip = tf.constant(self.clip_norm, tf.float32)
        # As tf.clip_by_global_norm: scale = clip * min(1 / norm, 1 / clip); NaN if norm is not finite.
        scale = clip * tf.minimum(1.0 / norm, 1.0 / clip) + (norm - norm)
        clipped = groups.unstack([g * tf.cast(scale, g.dtype) for g in stacked])
        out = list(grads_and_vars)
        for i, g in zip(positions, clipped):
            out[i] = (g, out[i][1])
        return out

    def _coupled_decay(self, grads_and_vars):
        """``g + weight_decay * w`` in the variable's dtype (PyTorch's coupled L2), per shape."""
        positions = [i for i, (g, _) in enumerate(grads_and_vars) if g is not None]
        if not positions:
            return grads_and_vars
        variables = [grads_and_vars[i][1] for i in positions]
        grads = [tf.cast(grads_and_vars[i][0], v.dtype) for i, v in zip(positions, variables)]
        if self.coupled_weight_decay:
            groups = ShapeGroups(variables)
            grads = groups.map(lambda g, w: g + tf.constant(self.coupled_weight_decay, w.dtype) * w,
                               grads, [tf.convert_to_tensor(v) for v in variables])
        out = list(grads_and_vars)
        for i, g in zip(positions, grads):
            out[i] = (g, out[i][1])
        return out

    def _fused_distributed_update(self, distribution, grads_and_vars, learning_rate):
        # As Keras' _distributed_tf_update_step, with gradients that already carry the decay. With
        # no strategy in scope (one device), the strategy's update would only enter a no-op update
        # context around each call: the updates are made directly, which saves ~1.3 s of the search
        # step's trace (766 weights; docs/search.md, Cost) and changes no op.
        direct = not tf.distribute.has_strategy()
        for grad, var in grads_and_vars:
            if grad is None:
                continue
            if direct:
                self._fused_update_step(var, grad, learning_rate)
            else:
                distribution.extended.update(var, self._fused_update_step, args=(grad, learning_rate), group=False)

    def _fused_update_step(self, variable, gradient, learning_rate):
        buf = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyMomentum(
            var=_handle(variable), accum=_handle(buf), lr=self._cast_learning_rate(learning_rate, variable.dtype),
            grad=gradient, momentum=self._constant(self.momentum, variable.dtype), use_nesterov=self.nesterov)

    def _cast_learning_rate(self, learning_rate, dtype):
        """The learning rate in ``dtype``, cast once per dtype within a traced update step."""
        cache = self.__dict__.get("_step_constants")
        if cache is None:
            return tf.cast(learning_rate, dtype)
        key = ("learning_rate", id(learning_rate), tf.as_dtype(dtype))
        if key not in cache:
            cache[key] = tf.cast(learning_rate, dtype)
        return cache[key]

    def update_step(self, gradient, variable, learning_rate, finite=None):
        """One PyTorch-SGD update; with ``finite`` (a boolean scalar) False it changes nothing."""
        buf = self.momentums[self._get_variable_index(variable)] if self.momentum else None
        self.apply_torch_sgd(gradient, variable, buf, learning_rate, finite=finite)

    def apply_torch_sgd(self, gradient, variable, buf, learning_rate, finite=None):
        """One PyTorch SGD update of ``variable`` with momentum buffer ``buf`` (also used by the
        Partial FC head, whose per-replica shards and buffers the optimiser does not own); with
        ``finite`` (a boolean scalar) False it changes nothing."""
        lr = self._cast_learning_rate(learning_rate, variable.dtype)
        g = tf.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            g = g + self._constant(self.coupled_weight_decay, variable.dtype) * variable
        if self.momentum and finite is None and tf.inside_function():
            # One fused kernel per variable: ``b = mu * b + g; w -= lr * b`` (Nesterov:
            # ``w -= lr * (g + mu * b)``) is exactly TensorFlow's ApplyMomentum. Traced, it is one
            # graph node where the update below is six.
            tf.raw_ops.ResourceApplyMomentum(
                var=_handle(variable), accum=_handle(buf), lr=lr, grad=g,
                momentum=self._constant(self.momentum, variable.dtype), use_nesterov=self.nesterov)
            return
        if self.momentum:
            mu = self._constant(self.momentum, variable.dtype)
            new_buf = mu * buf + g
            self.assign(buf, new_buf if finite is None else tf.where(finite, new_buf, buf))
            g = g + mu * new_buf if self.nesterov else new_buf
        step = lr * g
        self.assign_sub(variable, step if finite is None else tf.where(finite, step, tf.zeros_like(step)))

    def get_config(self):
        config = super().get_config()
        config.update({
            "momentum": self.momentum,
            "weight_decay": self.coupled_weight_decay,
            "nesterov": self.nesterov,
            "clip_norm": self.clip_norm,
            "dynamic_loss_scale": self.dynamic_loss_scale,
            "initial_loss_scale": self.initial_loss_scale,
            "growth_interval": self.growth_interval,
        })
        return config


def all_finite(tensors):
    """A boolean scalar: no NaN/Inf in any of ``tensors`` (``None`` entries are ignored)."""
    checks = [tf.reduce_all(tf.math.is_finite(t)) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(checks)) if checks else tf.constant(True)
