"""SearchModel: the bi-level DARTS optimisation as a Keras ``train_step`` (spec §2.5).

``model.fit`` consumes a dataset of ``((x_train, y_train), (x_val, y_val))`` pairs: the train
half (augmented) updates the network weights, the other half (un-augmented) the alphas.
``validation_data`` (plain ``(x, y)`` batches) gives top-1 accuracy in inference mode.

One step, textbook DARTS (default):
  1. alpha gradient on the validation batch (first or second order, see :mod:`architect`),
     Adam step on alpha;
  2. weight gradient of the training loss at the *new* alpha, PyTorch-SGD step on the weights
     (the optimiser clips the global L2 norm of the all-replica gradient to ``clip_norm``).

``alpha_grad_includes_train_loss=True`` reproduces the released PocketNet search (spec §2.5
steps 5-6): both gradients are taken at the *old* (w, alpha), the weights are stepped first, and
the alpha step uses ``d_alpha - xi * h + grad_alpha L_trn(w, alpha)`` because the original's weight
backward also accumulated into alpha's gradient. That training-loss term is the same one the
virtual step needs, so this mode costs one forward/backward pass less.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pocketnet_tf.search.architect import Architect, all_reduce_sum
from pocketnet_tf.fitting.torch_sgd import TorchSGD


def _num_replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class SearchModel(keras.Model):
    """Wraps a :class:`SearchNetwork` with the DARTS train step.

    Args:
      network: a built ``SearchNetwork``.
      second_order: unrolled (second-order) alpha gradient; False = first order.
      alpha_grad_includes_train_loss: reproduce the original's step ordering (see module doc).

    Compile with ``compile(weight_optimizer=TorchSGD(...), alpha_optimizer=TorchAdam(...))``
    (:class:`pocketnet_tf.fitting.torch_sgd.TorchSGD`, :class:`pocketnet_tf.search.optimizers.TorchAdam`).
    The architect reads the weight optimiser's momentum, coupled weight decay, learning rate
    (xi) and momentum buffers; its ``clip_norm`` (5 in the original) clips all network weights
    as one group. The weight optimiser's iteration counter is the global step.

    Metrics: ``loss`` / ``accuracy`` (training batch, before the weight step), ``alpha_loss``
    (validation loss the alpha gradient was taken from); in ``evaluate``: ``loss``, ``accuracy``.
    """

    def __init__(self, network, second_order=True, alpha_grad_includes_train_loss=False, **kwargs):
        kwargs.setdefault("name", "search_model")
        super().__init__(**kwargs)
        if not network.built:
            raise ValueError("SearchModel: the search network must be built")
        self.network = network
        self.second_order = bool(second_order)
        self.alpha_grad_includes_train_loss = bool(alpha_grad_includes_train_loss)
        self.loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
        self.alpha_loss_tracker = keras.metrics.Mean(name="alpha_loss")
        self.alpha_optimizer = None
        self.architect = None
        self.built = True

    def compile(self, weight_optimizer, alpha_optimizer, **kwargs):
        if not isinstance(weight_optimizer, TorchSGD):
            raise ValueError(
                f"SearchModel: weight_optimizer must be a TorchSGD (the virtual step reads its momentum "
                f"buffers), received {type(weight_optimizer).__name__}"
            )
        kwargs.setdefault("jit_compile", False)  # XLA is several times slower on CPU here
        # Mixed precision here is bfloat16 only (no loss scale): never wrap in a LossScaleOptimizer.
        kwargs.setdefault("auto_scale_loss", False)
        super().compile(optimizer=weight_optimizer, **kwargs)
        self.alpha_optimizer = alpha_optimizer
        # Two disjoint variable lists, one optimiser each; build both now (inside the strategy scope).
        weights = self.network.network_weights
        weight_optimizer.build(weights)
        weight_optimizer.set_clip_variables(weights)
        alpha_optimizer.build(self.network.alphas)
        self.architect = Architect(
            self.network, self.loss_fn, second_order=self.second_order,
            weight_momentum=weight_optimizer.momentum, weight_decay=weight_optimizer.coupled_weight_decay,
        )

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker, self.alpha_loss_tracker]

    def call(self, inputs, training=None):
        return self.network(inputs, training=training)

    # ------------------------------------------------------------------------------------------
    def _check_compiled(self):
        if self.architect is None:
            raise RuntimeError("SearchModel: call compile(weight_optimizer=..., alpha_optimizer=...) first")

    def _xi(self):
        return tf.convert_to_tensor(self.optimizer.learning_rate)

    def _momentum_buffers(self):
        opt = self.optimizer
        if not opt.momentum:
            return [None] * len(self.network.network_weights)
        return [opt.momentums[opt._get_variable_index(w)] for w in self.network.network_weights]

    def _train_forward(self, x, y, variables):
        """Real (stateful: BN statistics update) training forward; gradients w.r.t. ``variables``."""
        with tf.GradientTape() as tape:
            logits = self.network(x, training=True)
            loss = self.loss_fn(y, logits)
        return loss, logits, tape.gradient(loss, variables)

    def alpha_step(self, train_batch, val_batch):
        """Textbook DARTS alpha update; returns the validation loss. Touches only the alphas."""
        self._check_compiled()
        grads, val_loss = self.architect.alpha_gradients(
            train_batch, val_batch, self._xi(), self._momentum_buffers()
        )
        self.alpha_optimizer.apply(grads, self.network.alphas)
        return val_loss

    def weight_step(self, train_batch):
        """Weight update on the training loss at the current alpha; touches only the weights
        (and the BN moving statistics of the forward pass). Returns ``(loss, logits)``."""
        self._check_compiled()
        x, y = train_batch
        loss, logits, grads = self.architect.training_gradients(x, y)
        self.optimizer.apply(grads, self.network.network_weights)
        return loss, logits

    def original_order_step(self, train_batch, val_batch):
        """The released search's ordering (spec §2.5 steps 1-6); returns ``(loss, logits, val_loss)``."""
        self._check_compiled()
        x, y = train_batch
        weights, alphas = self.network.network_weights, self.network.alphas
        loss, logits, grads = self._train_forward(x, y, weights + alphas)
        w_grads, train_alpha_grads = grads[: len(weights)], grads[len(weights):]
        # The virtual step needs the full-batch gradient: sum the replicas' shares.
        reduced = all_reduce_sum(w_grads) if self.second_order else None
        alpha_grads, val_loss = self.architect.alpha_gradients(
            train_batch, val_batch, self._xi(), self._momentum_buffers(), train_weight_grads=reduced
        )
        self.optimizer.apply(w_grads, weights)
        self.alpha_optimizer.apply([a + t for a, t in zip(alpha_grads, train_alpha_grads)], alphas)
        return loss, logits, val_loss

    # ------------------------------------------------------------------------------------------
    def train_step(self, data):
        train_batch, val_batch = data
        if self.alpha_grad_includes_train_loss:
            loss, logits, val_loss = self.original_order_step(train_batch, val_batch)
        else:
            val_loss = self.alpha_step(train_batch, val_batch)
            loss, logits = self.weight_step(train_batch)
        replicas = _num_replicas()
        y_trn, y_val = train_batch[1], val_batch[1]
        self.loss_tracker.update_state(loss * replicas, sample_weight=tf.shape(y_trn)[0])
        self.alpha_loss_tracker.update_state(val_loss * replicas, sample_weight=tf.shape(y_val)[0])
        self.accuracy_tracker.update_state(y_trn, logits)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.network(x, training=False)
        loss = self.loss_fn(y, logits)
        self.loss_tracker.update_state(loss * _num_replicas(), sample_weight=tf.shape(y)[0])
        self.accuracy_tracker.update_state(y, logits)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}

    def get_config(self):
        return {
            "name": self.name,
            "network": keras.saving.serialize_keras_object(self.network),
            "second_order": self.second_order,
            "alpha_grad_includes_train_loss": self.alpha_grad_includes_train_loss,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)
