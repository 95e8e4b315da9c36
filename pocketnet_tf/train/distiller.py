"""Training models: a backbone with a margin head, optionally distilled from a frozen teacher.

:class:`MarginModel` is what plain ArcFace training needs (spec §6.8): ``model.fit`` on an
``(image, label)`` dataset; the head takes the label, the loss is the margin head's softmax
cross-entropy. :class:`DistillationModel` adds the KD term of spec §6.6:

    loss = CE(head(student(x)), y) + kd_weight · MSE(l2n(student(x)), l2n(teacher(x)))

with the MSE averaged over batch × embedding elements (``kd_weight`` = 100 in the original) and the
teacher run in inference mode on the same augmented batch. The teacher is changed between epochs
by :class:`pocketnet_tf.train.teacher_schedule.TeacherScheduleCallback`.

Both keep the original's optimisation when compiled with
:class:`pocketnet_tf.fitting.torch_sgd.TorchSGD`: the backbone's gradients are clipped to a global
norm (after the cross-replica sum), the head's are not.

Mixed precision (backbone built under a mixed dtype policy, :mod:`pocketnet_tf.fitting.precision`):
the head, the cross-entropy and the KD term run in float32, the loss is scaled by the optimiser
(``TorchSGD(dynamic_loss_scale=True)`` for float16; Keras' automatic ``LossScaleOptimizer``
wrapping is turned off), and every step logs ``nonfinite_steps``: the steps of the epoch so far
whose (all-replica) gradient held a NaN/Inf, plus ``loss_scale`` when the loss is scaled.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pocketnet_tf.layers.margin import l2_normalize
from pocketnet_tf.layers.partial_fc import PartialFCHead
from pocketnet_tf.fitting.torch_sgd import all_finite
from pocketnet_tf.train.teachers import as_teacher


def _multi_worker_mode() -> bool:
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class CosineDistance(keras.losses.Loss):
    """``1 − Σ y_true·y_pred`` per sample: the cosine distance of two L2-normalised embeddings.

    A ``keras.losses.Loss`` so that sample weights, the batch mean and the 1/replicas scaling
    under ``tf.distribute`` are Keras' own, as for the MSE term.
    """

    def call(self, y_true, y_pred):
        return 1.0 - tf.reduce_sum(y_true * y_pred, axis=-1)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class MarginModel(keras.Model):
    """A face-recognition backbone trained through a margin head (ArcFace/CosFace).

    Args:
      backbone: a Keras model mapping images to raw embeddings (e.g. ``models.build("PocketNetS-128")``).
      head: a margin head (:class:`~pocketnet_tf.layers.margin.ArcMarginHead` or
        :class:`~pocketnet_tf.layers.margin.CosMarginHead`) taking ``(embeddings, labels)``.

    ``fit`` expects ``(images, labels)`` batches: float32 NHWC images in [-1, 1] and integer class
    ids. Calling the model returns the backbone's embedding (inference uses no head).
    Logged metrics: ``loss`` and ``ce_loss``.
    """

    def __init__(self, backbone, head, **kwargs):
        kwargs.setdefault("name", "margin_model")
        super().__init__(**kwargs)
        if len(getattr(backbone, "outputs", None) or [None]) != 1:
            raise ValueError(f"{backbone.name}: the backbone must have a single embedding output")
        self.backbone = backbone
        self.head = head
        self.embedding_size = int(backbone.output_shape[-1])
        if not head.built:
            head.build((None, self.embedding_size))
        self.ce_loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, name="ce")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.ce_tracker = keras.metrics.Mean(name="ce_loss")
        self.nonfinite_tracker = keras.metrics.Sum(name="nonfinite_steps")
        self.built = True

    # -- Keras plumbing ---------------------------------------------------------------------------

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.ce_tracker, self.nonfinite_tracker]

    def compile(self, optimizer="sgd", **kwargs):
        if "loss" in kwargs and kwargs["loss"] is not None:
            raise ValueError(f"{type(self).__name__}.compile: the loss is built in; do not pass loss={kwargs['loss']!r}")
        # Loss scaling is the optimiser's own (TorchSGD(dynamic_loss_scale=True)): a Keras
        # LossScaleOptimizer wrapper would hide the clipping group and stop counting skipped steps.
        kwargs.setdefault("auto_scale_loss", False)
        super().compile(optimizer=optimizer, **kwargs)
        if hasattr(self.optimizer, "set_clip_variables"):
            # Only the backbone is clipped (the original clips backbone.parameters(), not the header).
            self.optimizer.set_clip_variables(self.backbone.trainable_variables)

    def compile_from_config(self, config):
        """Re-compiles a loaded model with its saved optimiser through this class's ``compile``
        (which sets the clipped variables); ``get_compile_config`` is Keras' own."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras builds compiled losses/metrics and the optimiser from a first batch, which it
        # averages over replicas with strategy.reduce(MEAN) — a call that fails under
        # MultiWorkerMirroredStrategy. This model has no compiled loss or metrics (its step
        # uses its own trackers) and all layers are built, so only the optimiser needs building.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    @property
    def input_image_shape(self) -> tuple:
        return tuple(self.backbone.input_shape[1:])

    # -- the step -----------------------------------------------------------------------------------

    def _teacher_embeddings(self, x):
        return None

    def compute_losses(self, x, y, sample_weight=None, training=True, teacher_embeddings=None):
        """Forward pass and every loss term; returns ``(total, {name: term})`` (replica-scaled).

        Each term comes from a ``keras.losses.Loss`` instance, so under ``tf.distribute`` it is
        already divided by the number of replicas (the summed gradients then equal the global
        mean's); metrics undo that scaling.
        """
        embeddings = self.backbone(x, training=training)
        if isinstance(self.head, PartialFCHead):
            step = self.optimizer.iterations if self.optimizer is not None else 0
            ce = self.head(embeddings, y, sample_weight=sample_weight, step=step, training=training)
            return ce, {"ce_loss": ce}, embeddings
        logits = self.head(embeddings, y, training=training)
        ce = self.ce_loss_fn(y, logits, sample_weight=sample_weight)
        return ce, {"ce_loss": ce}, embeddings

    def _update_trackers(self, x, total, terms, gradients=None):
        # Undo the 1/replicas scaling of the loss terms for logging (as Keras' own step does).
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, total.dtype)
        batch = tf.shape(x)[0]
        self.loss_tracker.update_state(total * replicas, sample_weight=batch)
        for tracker in self.metrics[1:]:
            if tracker.name in terms:
                tracker.update_state(terms[tracker.name] * replicas, sample_weight=batch)
        if gradients is not None:
            self._count_nonfinite(gradients)
        logs = {m.name: m.result() for m in self.metrics}
        if getattr(self.optimizer, "dynamic_loss_scale", False) and gradients is not None:
            logs["loss_scale"] = tf.convert_to_tensor(self.optimizer.loss_scale.value)
        if _multi_worker_mode():
            # Keras reduces step outputs across workers with reduce(MEAN, axis=0), which rejects
            # scalars; a length-1 vector reduces to the same scalar.
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def _count_nonfinite(self, gradients):
        """Adds this step to ``nonfinite_steps`` if any replica's gradient has a NaN/Inf."""
        bad = 1.0 - tf.cast(all_finite(gradients), "float32")
        context = tf.distribute.get_replica_context()
        replicas = 1
        if context is not None and context.num_replicas_in_sync > 1:
            replicas = context.num_replicas_in_sync
            bad = tf.minimum(context.all_reduce(tf.distribute.ReduceOp.SUM, bad), 1.0)
        # The metric sums its replicas' shares on read: each adds 1/replicas of the common flag.
        self.nonfinite_tracker.update_state(bad / replicas)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_embeddings = self._teacher_embeddings(x)
        variables = self.backbone.trainable_variables + self.head.trainable_variables
        # Partial FC: each replica's own centre shard, differentiated here and updated by the head
        # itself (never all-reduced); before apply_gradients, which advances the LR step.
        shards = list(getattr(self.head, "shard_variables", []))
        with tf.GradientTape() as tape:
            total, terms, _ = self.compute_losses(
                x, y, sample_weight, training=True, teacher_embeddings=teacher_embeddings
            )
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, variables + shards)
        gradients, shard_gradients = gradients[: len(variables)], gradients[len(variables):]
        total = self._apply_if_finite(total, gradients, variables, shard_gradients)
        return self._update_trackers(x, total, terms, gradients)

    def _apply_if_finite(self, total, gradients, variables, shard_gradients=()):
        """Applies the update with every gradient zeroed unless the loss and gradient norm are finite
        on all replicas (a ``tf.cond`` around ``apply_gradients`` cannot cross the replicas' gradient
        all-reduce), so the weights stay finite; a non-finite step returns a NaN loss, which the
        divergence guard callback sees in the logs and stops the run on (:mod:`pocketnet_tf.fitting.guard`).
        Partial FC shards (``shard_gradients``) are updated by the head first, under the same rule."""
        from pocketnet_tf.fitting.guard import finite_step

        shard_gradients = list(shard_gradients)
        # A loss-scaling optimiser (Keras' wrapper, or TorchSGD(dynamic_loss_scale=True) under
        # mixed_float16) skips overflowing (scaled) gradients itself and lowers its scale: only the
        # loss is ours to check, so an fp16 overflow skips a step instead of stopping the run.
        scaled_gradients = (isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer)
                            or bool(getattr(self.optimizer, "dynamic_loss_scale", False)))
        finite = finite_step(total, [] if scaled_gradients else gradients + shard_gradients)
        if shard_gradients:
            # Each replica's own centre shard (never all-reduced), before apply_gradients advances
            # the LR step; never with a NaN/Inf gradient, also when the loss scale handles the rest.
            shard_finite = finite_step(total, gradients + shard_gradients) if scaled_gradients else finite
            self.head.apply_shard_gradients(shard_gradients, self.optimizer, finite=shard_finite)
        if not scaled_gradients:
            gradients = [None if g is None else tf.where(finite, g, tf.zeros_like(g)) for g in gradients]
        self.optimizer.apply_gradients(zip(gradients, variables))
        return tf.where(finite, total, tf.constant(float("nan"), total.dtype))

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        total, terms, _ = self.compute_losses(
            x, y, sample_weight, training=False, teacher_embeddings=self._teacher_embeddings(x)
        )
        return self._update_trackers(x, total, terms)

    def predict_step(self, data):
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.backbone(x, training=False)

    # -- serialisation ------------------------------------------------------------------------------

    def get_config(self):
        return {
            "name": self.name,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "head": keras.saving.serialize_keras_object(self.head),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        config["head"] = keras.saving.deserialize_keras_object(config["head"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class DistillationModel(MarginModel):
    """Margin-head training plus knowledge distillation from a frozen teacher (spec §6.6, §6.7).

    Args:
      backbone: the student.
      head: the margin head.
      teacher: a teacher SavedModel path, a
        :class:`~pocketnet_tf.train.teachers.SavedModelTeacher`, a Keras model, or ``None`` (then
        the model trains like :class:`MarginModel` and logs ``kd_loss`` = 0). The teacher is run in
        inference mode outside the gradient tape and is never part of the model's variables or
        checkpoints.
      kd_weight: ``w`` in ``CE + w·MSE(l2n(s), l2n(t))`` (100).
      kd_loss: ``"mse"`` (the original: MSE between the L2-normalised embeddings, averaged over
        batch × embedding elements) or ``"cosine"`` (mean cosine distance ``1 − cos(s, t)`` over
        the batch). For unit vectors ``MSE = 2·(1 − cos)/D``, so ``"cosine"`` with weight ``w`` acts
        like ``"mse"`` with weight ``w·D/2`` on the value, but its gradient does not shrink with
        the embedding size ``D``.

    The teacher always runs in inference mode (BatchNorm on running statistics, no dropout) on
    the same augmented batch as the student: no separate teacher augmentation.

    Logged metrics: ``loss``, ``ce_loss``, ``kd_loss`` (the weighted term).
    """

    KD_LOSSES = ("mse", "cosine")

    def __init__(self, backbone, head, teacher=None, kd_weight=100.0, kd_loss="mse", **kwargs):
        kwargs.setdefault("name", "distillation_model")
        super().__init__(backbone, head, **kwargs)
        if not float(kd_weight) >= 0:
            raise ValueError(f"DistillationModel: kd_weight must be >= 0, received {kd_weight!r}")
        if kd_loss not in self.KD_LOSSES:
            raise ValueError(f"DistillationModel: kd_loss must be one of {list(self.KD_LOSSES)}, received {kd_loss!r}")
        self.kd_weight = float(kd_weight)
        self.kd_loss = kd_loss
        if kd_loss == "mse":
            self.kd_loss_fn = keras.losses.MeanSquaredError(name="kd")
        else:
            self.kd_loss_fn = CosineDistance(name="kd")
        self.kd_tracker = keras.metrics.Mean(name="kd_loss")
        self._teacher = None
        self.set_teacher(teacher, retrace=False)

    @property
    def metrics(self):
        return [self.loss_tracker, self.ce_tracker, self.kd_tracker, self.nonfinite_tracker]

    @property
    def teacher(self):
        return self._teacher

    def set_teacher(self, teacher, retrace=True):
        """Replaces the teacher object. A compiled step would keep calling the old one (a Python
        attribute read at trace time), so by default the train/test functions are rebuilt; the
        schedule callback prefers assigning weights into the existing teacher instead."""
        teacher = as_teacher(teacher)
        if teacher is not None:
            teacher.validate(self.input_image_shape, self.embedding_size)
        # Plain attribute on purpose: the teacher is not a Keras-tracked child (not trained, not
        # checkpointed with the student).
        object.__setattr__(self, "_teacher", teacher)
        if retrace:
            self.train_function = None
            self.test_function = None
            self.predict_function = None
            if getattr(self, "optimizer", None) is not None:
                self.make_train_function(force=True)

    def _teacher_embeddings(self, x):
        if self._teacher is None:
            return None
        return tf.stop_gradient(self._teacher(x))

    def compute_losses(self, x, y, sample_weight=None, training=True, teacher_embeddings=None):
        ce, terms, embeddings = super().compute_losses(x, y, sample_weight, training=training)
        if teacher_embeddings is None:
            kd = tf.zeros_like(ce)
        else:
            # In float32 whatever the student's or the teacher's compute type (mixed precision).
            kd = self.kd_loss_fn(
                l2_normalize(tf.cast(teacher_embeddings, "float32")), l2_normalize(tf.cast(embeddings, "float32")),
                sample_weight=sample_weight,
            )
            kd = self.kd_weight * kd
        terms["kd_loss"] = kd
        return ce + kd, terms, embeddings

    def get_config(self):
        config = super().get_config()
        config["kd_weight"] = self.kd_weight
        config["kd_loss"] = self.kd_loss
        return config
