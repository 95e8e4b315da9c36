"""The architect: the gradient of the validation loss with respect to alpha (DARTS, spec §2.5).

First order: ``d_alpha = grad_alpha L_val(w, alpha)``.

Second order (DARTS eq. 7-8, as the original ``Architect.unrolled_backward``)::

    g      = grad_w L_trn(w, alpha)
    w'     = w - xi * (momentum * buf + g + weight_decay * w)       # one virtual PyTorch-SGD step
    d_alpha, d_w' = grad_(alpha, w') L_val(w', alpha)
    eps    = 0.01 / ||d_w'||                                         # global L2 norm
    h      = (grad_alpha L_trn(w + eps d_w', alpha) - grad_alpha L_trn(w - eps d_w', alpha)) / (2 eps)
    result = d_alpha - xi * h

Nothing is copied and no variable is touched: every virtual forward runs through
``keras.Model.stateless_call`` with substituted weight values, so the real weights, alphas and
batch-norm statistics stay exactly as they were (the original evaluated w+ and w- in place on
the real network and updated its BN running statistics as a side effect; we do not).

Under ``tf.distribute`` the losses come from a ``keras.losses.Loss`` (scaled by 1 / replicas), so
per-replica gradients sum to the global-batch gradient. The quantities that enter non-linearly
-- ``g`` in the virtual step and ``d_w'`` (its norm sets eps and it is the finite-difference
direction) -- are summed over replicas explicitly before use; the returned alpha gradient is the
replica's share, which the optimiser's own all-reduce completes.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf

#: Numerator of the finite-difference step, eps = FD_SCALE / ||d_w'|| (the original's 0.01).
FD_SCALE = 0.01


def all_reduce_sum(tensors: list) -> list:
    """Sums ``tensors`` over the replicas of the current ``tf.distribute`` replica context
    (identity on a single device)."""
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return list(tensors)
    return list(ctx.all_reduce(tf.distribute.ReduceOp.SUM, list(tensors)))


def global_norm(tensors: list):
    return tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(t)) for t in tensors]))


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
        self._stateless_loss = tf.function(self._stateless_loss_impl, reduce_retracing=True)
        self._non_trainable_cache = None  # set for the duration of one alpha_gradients call

    # ------------------------------------------------------------------------------------------
    def loss(self, weight_values, alpha_values, x, y, training=True, constant_weights=False):
        """Loss of the network evaluated at the given weight and alpha values (stateless: the
        batch-norm statistic updates of the forward pass are discarded). ``constant_weights``:
        the caller differentiates with respect to alpha only, so the mixed edges may skip their
        weight gradients (``SearchNetwork.constant_weights``)."""
        non_trainable = self._non_trainable_values()
        # Inside the train step's graph, call the traced function; eagerly (tests, debugging),
        # run the same code directly: tracing a function per tape would cost far more.
        fn = self._stateless_loss if tf.inside_function() else self._stateless_loss_impl
        return fn(list(weight_values), list(alpha_values), non_trainable, x, y, training, bool(constant_weights))

    def _non_trainable_values(self):
        """The batch-norm moving statistics, read once per alpha gradient (they do not change
        within it: every pass is stateless) instead of once per pass."""
        if self._non_trainable_cache is not None:
            return self._non_trainable_cache
        return [tf.convert_to_tensor(v) for v in self.network.non_trainable_variables]

    def _stateless_loss_impl(self, weight_values, alpha_values, non_trainable_values, x, y, training,
                             constant_weights=False):
        # Traced once and called several times per step (virtual step, unrolled validation loss,
        # w+ and w-; a second trace for the alpha-only passes): the step graph then holds one copy
        # of the network instead of four. Every input is explicit (nothing captured), so the same
        # function serves every replica.
        trainable = [
            alpha_values[i] if kind == "alpha" else weight_values[i] for kind, i in self._layout
        ]
        constant = getattr(self.network, "constant_weights", None)
        with constant() if (constant_weights and constant is not None) else contextlib.nullcontext():
            logits, _ = self.network.stateless_call(trainable, non_trainable_values, x, training=training)
        return self.loss_fn(y, logits)

    def weight_gradients(self, weight_values, alpha_values, x, y):
        with tf.GradientTape() as tape:
            tape.watch(weight_values)
            loss = self.loss(weight_values, alpha_values, x, y)
        return tape.gradient(loss, weight_values)

    def _alpha_gradients_at(self, weight_values, alpha_values, x, y):
        with tf.GradientTape() as tape:
            tape.watch(alpha_values)
            loss = self.loss(weight_values, alpha_values, x, y, constant_weights=True)
        return tape.gradient(loss, alpha_values)

    def virtual_weights(self, weight_values, alpha_values, train_batch, xi, momentum_buffers,
                        train_weight_grads=None):
        """w' = w - xi * (momentum * buf + g + weight_decay * w), g summed over replicas.

        ``train_weight_grads`` (already summed over replicas) may be passed when the caller has
        computed grad_w L_trn(w, alpha) anyway.
        """
        if train_weight_grads is None:
            x_trn, y_trn = train_batch
            train_weight_grads = all_reduce_sum(self.weight_gradients(weight_values, alpha_values, x_trn, y_trn))
        virtual = []
        constants = {}  # one constant per dtype, not one per weight (1,532 weights in the paper network)
        for w, g, buf in zip(weight_values, train_weight_grads, momentum_buffers):
            if w.dtype not in constants:
                constants[w.dtype] = (tf.cast(xi, w.dtype), tf.constant(self.weight_decay, w.dtype),
                                      tf.constant(self.weight_momentum, w.dtype))
            xi_t, decay, momentum = constants[w.dtype]
            step = g + decay * w
            if buf is not None:
                step = step + momentum * tf.convert_to_tensor(buf)
            virtual.append(w - xi_t * step)
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
        self._non_trainable_cache = [tf.convert_to_tensor(v) for v in self.network.non_trainable_variables]
        try:
            return self._alpha_gradients(train_batch, val_batch, xi, momentum_buffers, train_weight_grads)
        finally:
            self._non_trainable_cache = None

    def _alpha_gradients(self, train_batch, val_batch, xi, momentum_buffers, train_weight_grads):
        x_val, y_val = val_batch
        weights = [tf.convert_to_tensor(w) for w in self.network.network_weights]
        alphas = [tf.convert_to_tensor(a) for a in self.network.alphas]

        if not self.second_order:
            with tf.GradientTape() as tape:
                tape.watch(alphas)
                val_loss = self.loss(weights, alphas, x_val, y_val)
            return tape.gradient(val_loss, alphas), val_loss

        if momentum_buffers is None:
            momentum_buffers = [None] * len(weights)
        virtual = self.virtual_weights(weights, alphas, train_batch, xi, momentum_buffers, train_weight_grads)
        with tf.GradientTape() as tape:
            tape.watch(alphas)
            tape.watch(virtual)
            val_loss = self.loss(virtual, alphas, x_val, y_val)
        d_alpha, d_virtual = tape.gradient(val_loss, (alphas, virtual))
        d_virtual = all_reduce_sum(d_virtual)
        hessian = self.hessian_vector_product(weights, alphas, d_virtual, train_batch)
        xi_t = tf.cast(xi, alphas[0].dtype)
        return [da - xi_t * h for da, h in zip(d_alpha, hessian)], val_loss

    def hessian_vector_product(self, weight_values, alpha_values, direction, train_batch):
        """Central finite difference of grad_alpha L_trn along ``direction`` in weight space:
        (grad_alpha L_trn(w + eps d) - grad_alpha L_trn(w - eps d)) / (2 eps), eps = 0.01 / ||d||."""
        x_trn, y_trn = train_batch
        norm = global_norm(direction)
        # A zero direction (e.g. a saturated loss) gives h = 0 instead of 0 * inf = NaN.
        eps = FD_SCALE / tf.maximum(norm, tf.cast(1e-12, norm.dtype))
        plus = [w + eps * d for w, d in zip(weight_values, direction)]
        minus = [w - eps * d for w, d in zip(weight_values, direction)]
        grad_plus = self._alpha_gradients_at(plus, alpha_values, x_trn, y_trn)
        grad_minus = self._alpha_gradients_at(minus, alpha_values, x_trn, y_trn)
        return [(p - m) / (2.0 * eps) for p, m in zip(grad_plus, grad_minus)]
