"""Training models: a backbone with a margin head, optionally distilled from a frozen teacher.

:class:`MarginModel` is what plain ArcFace training needs (spec §6.8): ``model.fit`` on an
``(image, label)`` dataset; the head takes the label, the loss is the margin head's softmax
cross-entropy. :class:`DistillationModel` adds the KD term of spec §6.6:

    loss = CE(head(student(x)), y) + kd_weight · MSE(l2n(student(x)), l2n(teacher(x)))

with the MSE averaged over batch × embedding elements (``kd_weight`` = 100 in the original) and the
teacher run in inference mode on the same augmented batch. The teacher is changed between epochs
by :class:`pocketnet_tf.train.teacher_schedule.TeacherScheduleCallback`.

Both keep the original's optimisation when compiled with
:class:`pocketnet_tf.train.optimizer.TorchSGD`: the backbone's gradients are clipped to a global
norm (after the cross-replica sum), the head's are not.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from pocketnet_tf.layers.margin import l2_normalize
from pocketnet_tf.train.teachers import as_teacher


def _multi_worker_mode() -> bool:
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


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
        self.built = True

    # -- Keras plumbing ---------------------------------------------------------------------------

    def call(self, inputs, training=None):
        return self.backbone(inputs, training=training)

    @property
    def metrics(self):
        return [self.loss_tracker, self.ce_tracker]

    def compile(self, optimizer="sgd", **kwargs):
        if "loss" in kwargs and kwargs["loss"] is not None:
            raise ValueError(f"{type(self).__name__}.compile: the loss is built in; do not pass loss={kwargs['loss']!r}")
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
        logits = self.head(embeddings, y, training=training)
        ce = self.ce_loss_fn(y, logits, sample_weight=sample_weight)
        return ce, {"ce_loss": ce}, embeddings

    def _update_trackers(self, x, total, terms):
        # Undo the 1/replicas scaling of the loss terms for logging (as Keras' own step does).
        replicas = tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, total.dtype)
        batch = tf.shape(x)[0]
        self.loss_tracker.update_state(total * replicas, sample_weight=batch)
        for tracker in self.metrics[1:]:
            tracker.update_state(terms[tracker.name] * replicas, sample_weight=batch)
        logs = {m.name: m.result() for m in self.metrics}
        if _multi_worker_mode():
            # Keras reduces step outputs across workers with reduce(MEAN, axis=0), which rejects
            # scalars; a length-1 vector reduces to the same scalar.
            logs = {k: tf.reshape(v, [1]) for k, v in logs.items()}
        return logs

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_embeddings = self._teacher_embeddings(x)
        variables = self.backbone.trainable_variables + self.head.trainable_variables
        with tf.GradientTape() as tape:
            total, terms, _ = self.compute_losses(
                x, y, sample_weight, training=True, teacher_embeddings=teacher_embeddings
            )
            scaled = self.optimizer.scale_loss(total)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_trackers(x, total, terms)

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

    Logged metrics: ``loss``, ``ce_loss``, ``kd_loss`` (the weighted term).
    """

    def __init__(self, backbone, head, teacher=None, kd_weight=100.0, **kwargs):
        kwargs.setdefault("name", "distillation_model")
        super().__init__(backbone, head, **kwargs)
        if not float(kd_weight) >= 0:
            raise ValueError(f"DistillationModel: kd_weight must be >= 0, received {kd_weight!r}")
        self.kd_weight = float(kd_weight)
        self.kd_loss_fn = keras.losses.MeanSquaredError(name="kd")
        self.kd_tracker = keras.metrics.Mean(name="kd_loss")
        self._teacher = None
        self.set_teacher(teacher, retrace=False)

    @property
    def metrics(self):
        return [self.loss_tracker, self.ce_tracker, self.kd_tracker]

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
            kd = self.kd_weight * self.kd_loss_fn(
                l2_normalize(tf.cast(teacher_embeddings, embeddings.dtype)), l2_normalize(embeddings),
                sample_weight=sample_weight,
            )
        terms["kd_loss"] = kd
        return ce + kd, terms, embeddings

    def get_config(self):
        config = super().get_config()
        config["kd_weight"] = self.kd_weight
        return config
