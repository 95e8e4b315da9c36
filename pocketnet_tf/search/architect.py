"""The architect: the gradient of the validation loss with respect to alpha (DARTS, spec §2.5).

First order: ``d_alpha = grad_alpha L_val(w, alpha)``.

Second order (DARTS eq. 7-8, as the original ``Architect.unrolled_backward``)::

    g      = grad_w L_trn(w, alpha)
    w'     = w - xi * (momentum * buf + g + weight_decay * w)       # one virtual PyTorch-SGD step
    d_alpha, d_w' = grad_(alpha, w') L_val(w', alpha)
    eps    = 0.01 / ||d_w'||                                         # global L2 norm
    h      = (grad_alpha L_trn(w + eps d_w', alpha) - grad_alpha L_trn(w - eps d_w', alpha)) / (2 eps)
    result = d_alpha - xi * h

The alpha gradient touches no variable: every virtual forward runs through
``keras.Model.stateless_call`` with substituted weight values, so the real weights, alphas and batch-norm statistics stay exactly as
they were (the original evaluated w+ and w- in place on the real network and updated its BN
running statistics as a side effect; we do not). The weights are handled stacked by shape
(:class:`~pocketnet_tf.fitting.shape_groups.ShapeGroups`, one tensor per distinct shape): the
arithmetic above is one op per shape, not one per weight, and the traced loss takes a few dozen
inputs instead of thousands; the values are the same element for element. The weight step's forward
and backward pass (:meth:`Architect.training_gradients`) reuse the same traced function and
assign the batch-norm statistics it returns.

Under ``tf.distribute`` the losses come from a ``keras.losses.Loss`` (scaled by 1 / replicas), so
per-replica gradients sum to the global-batch gradient. The quantities that enter non-linearly
-- ``g`` in the virtual step and ``d_w'`` (its norm sets eps and it is the finite-difference
direction) -- are summed over replicas explicitly before use; the returned alpha gradient is the
replica's share, which the optimiser's own all-reduce completes.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

from pocketnet_tf.fitting.shape_groups import ShapeGroups

#: Numerator of the finite-difference step, eps = FD_SCALE / ||d_w'|| (the original's 0.01).
FD_SCALE = 0.01


def all_reduce_sum(tensors: list) -> list:
    """Sums ``tensors`` over the replicas of the current ``tf.distribute`` replica context
    (identity on a single device)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return list(tensors)
    return list(ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors)))


class Architect:
    """Computes alpha gradients for a :class:`~pocketnet_tf.search.search_network.SearchNetwork`.

    Args:
      network: the search network (built).
      loss_fn: a ``keras.losses.Loss`` on ``(labels, logits)`` (mean over the batch, scaled for
        distribution by Keras).
      second_order: unrolled (DARTS second order) or first-order gradient.
      weight_momentum: momentum of the weight optimiser (mu in the virtual step).
      weight_decay: coupled weight decay of the weight optimiser (lambda in the virtual step).
    """

    def __init__(self, network, loss_fn, *, second_order=True, weight_momentum=0.9, weight_decay=3e-4):
        self.network = network
        self.loss_fn = loss_fn
        self.second_order = bool(second_order)
        self.weight_momentum = float(weight_momentum)
        self.weight_decay = float(weight_decay)
        alpha_pos = {id(a): i for i, a in enumerate(network.alphas)}
        weight_pos = {id(w): i for i, w in enumerate(network.network_weights)}
        # For each trainable variable of the network: ("alpha", i) or ("weight", i).
        self._layout = []
        for v in network.trainable_variables:
            if id(v) in alpha_pos:
                self._layout.append(("alpha", alpha_pos[id(v)]))
            else:
                self._layout.append(("weight", weight_pos[id(v)]))
        # Weights and batch-norm statistics enter the traced loss stacked by shape (46 + 6
        # tensors in the paper network instead of 1,532 + 1,432 inputs): the function, its
        # gradient and every call site are that much smaller to trace, inline and optimise.
        self._weight_groups = ShapeGroups(network.network_weights)
        self._state_groups = ShapeGroups(network.non_trainable_variables)
        self._stateless_loss = tf.function(self._stateless_loss_impl, reduce_retracing=True)
        self._state_cache = None  # set for the duration of one alpha_gradients call

    # ------------------------------------------------------------------------------------------
    def loss(self, weight_values, alpha_values, x, y, training=True, constant_weights=False):
        """Loss of the network evaluated at the given weight and alpha values (stateless: the
        batch-norm statistic updates of the forward pass are discarded). ``constant_weights``:
        the caller differentiates with respect to alpha only, so the mixed edges may skip their
        weight gradients (``SearchNetwork.constant_weights``)."""
        return self._loss(self._weight_groups.stack(weight_values), alpha_values, x, y, training, constant_weights)

    def _loss(self, stacked_weights, alpha_values, x, y, training=True, constant_weights=False):
        """:meth:`loss` of weights stacked by :attr:`_weight_groups`."""
        # Inside the train step's graph, call the traced function; eagerly (tests, debugging),
        # run the same code directly: tracing a function per tape would cost far more.
        return self._stateless_outputs(stacked_weights, alpha_values, x, y, training, constant_weights)[0]

    def _stateless_outputs(self, stacked_weights, alpha_values, x, y, training=True, constant_weights=False):
        """``(loss, logits, new batch-norm statistics stacked by shape)`` of the traced function."""
        fn = self._stateless_loss if tf.inside_function() else self._stateless_loss_impl
        return fn(list(stacked_weights), list(alpha_values), self._stacked_state(), x, y, training,
                  bool(constant_weights))

    def _stacked_state(self):
        """The batch-norm moving statistics stacked by shape, read once per alpha gradient (they
        do not change within it: every pass is stateless) instead of once per pass."""
        if self._state_cache is not None:
            return self._state_cache
        return self._state_groups.stack(self.network.non_trainable_variables)

    def _stateless_loss_impl(self, stacked_weights, alpha_values, stacked_state, x, y, training,
                             constant_weights=False):
        # Traced once and called several times per step (virtual step, unrolled validation loss,
        # w+ and w-; a second trace for the alpha-only passes): the step graph then holds one copy
        # of the network instead of four. Every input is explicit (nothing captured), so the same
        # function serves every replica.
        weight_values = self._weight_groups.unstack(stacked_weights)
        trainable = [
            alpha_values[i] if kind == "alpha" else weight_values[i] for kind, i in self._layout
        ]
        constant = getattr(self.network, "constant_weights", None)
        with constant() if (constant_weights and constant is not None) else contextlib.nullcontext():
            logits, state = self.network.stateless_call(trainable, self._state_groups.unstack(stacked_state), x,
                                                        training=training)
        # The new statistics are used by the weight step only; elsewhere the optimiser prunes them.
        # (No gradient flows back from them: without the stop, the function's symbolic gradient
        # would differentiate every edge's forward function through its statistics outputs.)
        return self.loss_fn(y, logits), logits, [tf.stop_gradient(s) for s in self._state_groups.stack(state)]

    def training_gradients(self, x, y):
        """The weight step's forward and backward pass: ``(loss, logits, weight gradients)`` at the
        current weights and alphas (this replica's share), with the batch-norm moving statistics
        updated as a stateful training forward pass updates them.

        It calls the traced function of the virtual step with the same inputs (weights, alphas,
        statistics, training batch), so a second-order step traces and differentiates the network
        once for both instead of tracing a stateful pass and its gradient as well. The only
        method of the architect that writes a variable (the statistics).
        """
        groups = self._weight_groups
        stacked_weights = groups.stack(self.network.network_weights)
        alphas = [tf.convert_to_tensor(a) for a in self.network.alphas]
        with tf.GradientTape() as tape:
            tape.watch(stacked_weights)
            loss, logits, state = self._stateless_outputs(stacked_weights, alphas, x, y)
        grads = tape.gradient(loss, stacked_weights)
        for variable, value in zip(self.network.non_trainable_variables, self._state_groups.unstack(state)):
            variable.assign(value)
        return loss, logits, groups.unstack(grads)

    def weight_gradients(self, weight_values, alpha_values, x, y):
        """grad_w L(w, alpha) on ``(x, y)`` (this replica's share), one gradient per weight."""
        return self._weight_groups.unstack(
            self._stacked_weight_gradients(self._weight_groups.stack(weight_values), alpha_values, x, y))

    def _stacked_weight_gradients(self, stacked_weights, alpha_values, x, y):
        with tf.GradientTape() as tape:
            tape.watch(stacked_weights)
            loss = self._loss(stacked_weights, alpha_values, x, y)
        return tape.gradient(loss, stacked_weights)

    def _alpha_gradients_at(self, stacked_weights, alpha_values, x, y):
        with tf.GradientTape() as tape:
            tape.watch(alpha_values)
            loss = self._loss(stacked_weights, alpha_values, x, y, constant_weights=True)
        return tape.gradient(loss, alpha_values)

    def virtual_weights(self, weight_values, alpha_values, train_batch, xi, momentum_buffers,
                        train_weight_grads=None):
        """w' = w - xi * (momentum * buf + g + weight_decay * w), g summed over replicas.

        ``train_weight_grads`` (already summed over replicas) may be passed when the caller has
        computed grad_w L_trn(w, alpha) anyway.
        """
        groups = self._weight_groups
        return groups.unstack(self._stacked_virtual_weights(groups.stack(weight_values), alpha_values, train_batch,
                                                            xi, momentum_buffers, train_weight_grads))

    def _stacked_virtual_weights(self, stacked_weights, alpha_values, train_batch, xi, momentum_buffers,
                                 train_weight_grads):
        """The virtual step on the weights stacked by shape: the same element-wise arithmetic,
        one op per shape instead of one per weight."""
        groups = self._weight_groups
        if train_weight_grads is None:
            x_trn, y_trn = train_batch
            grads = all_reduce_sum(self._stacked_weight_gradients(stacked_weights, alpha_values, x_trn, y_trn))
        else:
            grads = groups.stack(train_weight_grads)
        if momentum_buffers is None or all(b is None for b in momentum_buffers):
            buffers = [None] * len(stacked_weights)
        elif any(b is None for b in momentum_buffers):
            raise ValueError("Architect: momentum buffers must be given for every weight or for none")
        else:
            buffers = groups.stack(momentum_buffers)
        virtual = []
        for w, g, buf in zip(stacked_weights, grads, buffers):
            step = g + tf.constant(self.weight_decay, w.dtype) * w
            if buf is not None:
                step = step + tf.constant(self.weight_momentum, w.dtype) * buf
            virtual.append(w - tf.cast(xi, w.dtype) * step)
        return virtual

    def alpha_gradients(self, train_batch, val_batch, xi, momentum_buffers=None, train_weight_grads=None):
        """The alpha gradient of this replica and the validation loss it was taken from.

        Args:
          train_batch, val_batch: ``(images, labels)``.
          xi: the weight learning rate of the current epoch (ignored by the first-order rule).
          momentum_buffers: per network weight, the weight optimiser's momentum buffer (or None).
          train_weight_grads: optional grad_w L_trn(w, alpha), summed over replicas.

        Returns:
          ``(alpha_grads, val_loss)``: a list aligned with ``network.alphas`` and the (replica
          scaled) validation loss at the weights the gradient was taken at (w' or w).
        """
        self._state_cache = self._state_groups.stack(self.network.non_trainable_variables)
        try:
            return self._alpha_gradients(train_batch, val_batch, xi, momentum_buffers, train_weight_grads)
        finally:
            self._state_cache = None

    def _alpha_gradients(self, train_batch, val_batch, xi, momentum_buffers, train_weight_grads):
        x_val, y_val = val_batch
        weights = self._weight_groups.stack(self.network.network_weights)
        alphas = [tf.convert_to_tensor(a) for a in self.network.alphas]

        if not self.second_order:
            with tf.GradientTape() as tape:
                tape.watch(alphas)
                val_loss = self._loss(weights, alphas, x_val, y_val)
            return tape.gradient(val_loss, alphas), val_loss

        virtual = self._stacked_virtual_weights(weights, alphas, train_batch, xi, momentum_buffers,
                                                train_weight_grads)
        with tf.GradientTape() as tape:
            tape.watch(alphas)
            tape.watch(virtual)
            val_loss = self._loss(virtual, alphas, x_val, y_val)
        d_alpha, d_virtual = tape.gradient(val_loss, (alphas, virtual))
        direction = all_reduce_sum(d_virtual)
        hessian = self._stacked_hessian_vector_product(weights, alphas, direction, train_batch)
        xi_t = tf.cast(xi, alphas[0].dtype)
        return [da - xi_t * h for da, h in zip(d_alpha, hessian)], val_loss

    def hessian_vector_product(self, weight_values, alpha_values, direction, train_batch):
        """Central finite difference of grad_alpha L_trn along ``direction`` in weight space:
        (grad_alpha L_trn(w + eps d) - grad_alpha L_trn(w - eps d)) / (2 eps), eps = 0.01 / ||d||."""
        groups = self._weight_groups
        return self._stacked_hessian_vector_product(groups.stack(weight_values), alpha_values,
                                                    groups.stack(direction), train_batch)

    def _stacked_hessian_vector_product(self, stacked_weights, alpha_values, stacked_direction, train_batch):
        x_trn, y_trn = train_batch
        norm = tf.sqrt(ShapeGroups.sum_of_squares_stacked(stacked_direction))
        # A zero direction (e.g. a saturated loss) gives h = 0 instead of 0 * inf = NaN.
        eps = FD_SCALE / tf.maximum(norm, tf.cast(1e-12, norm.dtype))
        plus, minus = [], []
        for w, d in zip(stacked_weights, stacked_direction):
            step = tf.cast(eps, d.dtype) * d
            plus.append(w + step)
            minus.append(w - step)
        grad_plus = self._alpha_gradients_at(plus, alpha_values, x_trn, y_trn)
        grad_minus = self._alpha_gradients_at(minus, alpha_values, x_trn, y_trn)
        return [(p - m) / (2.0 * eps) for p, m in zip(grad_plus, grad_minus)]
