"""Partial FC: an ArcFace/CosFace head whose class centres are sharded across replicas.

At millions of identities the margin head (one centre per identity), its momentum and the
``[batch, classes]`` logits no longer fit one device, and all-reducing the head's gradient every
step dominates communication. Partial FC (An et al., CVPR 2022; insightface's ``arcface_torch``)
splits the centres across the ``K`` replicas instead (model parallel):

1. the embeddings, labels and sample weights of the global batch are all-gathered;
2. replica ``r`` holds centres ``[r·S, (r+1)·S)`` with ``S = ceil(C / K)`` (the last shard is padded
   with masked columns) and scores the whole global batch against them only;
3. the row maxima (all-gather of ``K`` vectors) and the sums of exponentials and target logits
   (one all-reduce) are combined across replicas, so each replica knows the exact softmax
   cross-entropy of every row (:func:`sharded_softmax_cross_entropy`);
4. the backward pass needs no further communication for the centres: each replica's gradient of
   its shard is exact and is applied by that replica alone (:meth:`PartialFCHead.apply_shard_gradients`,
   TorchSGD semantics, weight decay and momentum included); the embeddings' gradient flows back
   through the all-gather (an all-reduce and a slice), so the backbone's gradients are all-reduced
   by the optimiser as for any other head.

With ``sample_rate < 1`` each replica scores only a sampled subset of its centres per training
step: every centre that is the label of some row of the global batch is kept, the rest are drawn
uniformly (``ceil(rate · n)`` of the shard's ``n`` real centres in all). The loss is then the exact
softmax cross-entropy over the sampled centres; unsampled centres get a zero gradient but still
weight decay and momentum, as in ``arcface_torch``'s ``PartialFC_V2``. Evaluation uses every centre.

Storage: the shard and its momentum buffer are ``tf.Variable`` s with ``ON_READ`` synchronisation
and no aggregation under a ``tf.distribute`` strategy, i.e. one distinct ``[S, D]`` buffer per
replica that a replica reads and writes locally (cross-replica reads of it are refused). They are
Keras non-trainable weights, so the Keras optimiser never sees (or all-reduces) them, while the
underlying TF variable stays trainable so that the gradient tape watches it. In a checkpoint the
head is stored as the full ``[D, C]`` centre matrix (the layout of
:class:`~pocketnet_tf.layers.margin.ArcMarginHead`'s kernel) plus the full momentum, so a run
restored under a different number of replicas is re-sharded on load.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pocketnet_tf.layers.margin import COS_CLIP, build_head, l2_normalize

#: ``--head_sharding`` values: ``auto`` = Partial FC whenever more than one replica trains (or
#: sampling is asked for, or a sharded run is resumed); ``none`` = the replicated margin head.
SHARDING_MODES = ("auto", "none")  # = pocketnet_tf.train.config.HEAD_SHARDING (config stays TF-free)


def shard_size(num_classes: int, num_shards: int) -> int:
    """Centres held by each replica: ``ceil(num_classes / num_shards)``."""
    return -(-int(num_classes) // int(num_shards))


def use_partial_fc(head_sharding: str, replicas: int, sample_rate: float = 1.0, resuming_sharded: bool = False) -> bool:
    """Whether ``--head_sharding`` selects the Partial FC head for ``replicas`` replicas."""
    if head_sharding not in SHARDING_MODES:
        raise ValueError(f"head_sharding must be one of {list(SHARDING_MODES)}, received {head_sharding!r}")
    if head_sharding == "none":
        if sample_rate < 1.0:
            raise ValueError(f"--head_sample_rate={sample_rate} needs the Partial FC head (--head_sharding=auto)")
        return False
    return replicas > 1 or sample_rate < 1.0 or resuming_sharded


def _replica_context():
    ctx = tf.distribute.get_replica_context()
    if ctx is None:
        raise RuntimeError("PartialFCHead must be called in a replica context (inside strategy.run / model.fit)")
    return ctx


def sharded_softmax_cross_entropy(logits, one_hot, valid, num_replicas: int):
    """Per-row softmax cross-entropy of logits split column-wise across replicas.

    Args:
      logits: ``[B, n]`` this replica's logits of every row of the global batch.
      one_hot: ``[B, n]`` 1 where the column is the row's label (at most one replica has it).
      valid: ``[n]`` bool, False for padding columns (excluded from the softmax).
      num_replicas: replicas in sync (1: no communication).

    Returns ``[B]`` losses ``log Σ_all exp(l) − l_target``, identical on every replica. The
    gradient with respect to ``logits`` is ``ĝ·(softmax − one_hot)`` restricted to this replica's
    columns, where ``ĝ`` is the *sum* over replicas of the incoming row gradients: that is the
    gradient of the collectives' combination, so the sum of the replicas' losses differentiates
    exactly like one loss over all columns.
    """
    ctx = _replica_context()
    masked = tf.where(valid[None, :], logits, tf.constant(-np.inf, logits.dtype))
    row_max = tf.reduce_max(masked, axis=1)
    if num_replicas > 1:
        row_max = tf.reduce_max(ctx.all_gather(row_max[None, :], axis=0), axis=0)
    row_max = tf.stop_gradient(row_max)

    @tf.custom_gradient
    def _loss(local_logits):
        exps = tf.where(valid[None, :], tf.exp(local_logits - row_max[:, None]), tf.zeros_like(local_logits))
        sums = tf.stack([tf.reduce_sum(exps, axis=1), tf.reduce_sum(local_logits * one_hot, axis=1)])
        if num_replicas > 1:
            sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
        loss = tf.math.log(sums[0]) + row_max - sums[1]

        def grad(upstream):
            if num_replicas > 1:
                upstream = ctx.all_reduce(tf.distribute.ReduceOp.SUM, upstream)
            return upstream[:, None] * (exps / sums[0][:, None] - one_hot)

        return loss, grad

    return _loss(logits)


@keras.saving.register_keras_serializable(package="pocketnet_tf")
class PartialFCHead(keras.layers.Layer):
    """ArcFace/CosFace margin head with centres sharded across replicas (Partial FC).

    See the module docstring for the algorithm. The number of shards is the number of replicas
    in sync of the strategy the layer is built under (1 outside any strategy: then it computes
    exactly what the replicated head computes).

    Args:
      num_classes: identities ``C``.
      kind: ``arcface`` or ``cosface`` (the margin of
        :class:`~pocketnet_tf.layers.margin.ArcMarginHead` / ``CosMarginHead``).
      scale: ``s`` (64).
      margin: ``m``; ``None`` for the kind's default (0.5 / 0.35).
      sample_rate: fraction of each shard's centres scored per training step (1.0 = all);
        the batch's positives are always kept.
      seed: seed of the centre sampling (combined with the step and the replica id).

    Call arguments:
      embeddings: ``(local_batch, D)`` this replica's embeddings.
      labels: ``(local_batch,)`` integer class ids.
      sample_weight: optional ``(local_batch,)`` weights.
      step: the optimiser step (varies the sampled centres).
      training: sampling happens only in training.

    Returns this replica's share of the mean softmax cross-entropy over the global batch (the
    loss divided by the replica count, as a ``keras.losses.Loss`` returns under ``tf.distribute``).
    """

    def __init__(self, num_classes, kind="arcface", scale=64.0, margin=None, sample_rate=1.0, seed=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        margin_head = build_head(kind, num_classes, scale=scale, margin=margin, name=f"{self.name}_margin")
        # Untracked helper holding the margin arithmetic; it owns no weights.
        object.__setattr__(self, "_margin_head", margin_head)
        if not 0.0 < float(sample_rate) <= 1.0:
            raise ValueError(f"PartialFCHead: sample_rate must be in (0, 1], received {sample_rate!r}")
        self.num_classes = int(num_classes)
        self.kind = kind
        self.scale = float(scale)
        self.margin = margin_head.margin
        self.sample_rate = float(sample_rate)
        self.seed = int(seed)
        self._gathered = {}
        self._local_ids = None

    # -- weights ----------------------------------------------------------------------------------

    def build(self, input_shape):
        embedding_size = input_shape[-1]
        if embedding_size is None:
            raise ValueError(f"{self.name}: the embedding size (last input axis) must be known, received {input_shape}")
        self.embedding_size = int(embedding_size)
        self.num_shards = tf.distribute.get_strategy().num_replicas_in_sync
        self.shard_size = shard_size(self.num_classes, self.num_shards)
        self.kernel = self._shard_variable("kernel")
        self.momentum = self._shard_variable("momentum")
        init = keras.initializers.RandomNormal(stddev=0.01)((self.embedding_size, self.num_classes))
        self.assign_full(self.kernel, np.asarray(init))

    def _shard_variable(self, name):
        # ON_READ + no aggregation: one distinct buffer per replica, written locally in the step.
        sync = "on_read" if tf.distribute.has_strategy() else "auto"
        variable = keras.Variable(initializer="zeros", shape=(self.shard_size, self.embedding_size), dtype="float32",
                                  trainable=True, aggregation="none", synchronization=sync, name=name)
        # Hidden from the Keras optimiser (which would all-reduce it); the TF variable stays
        # trainable, so the tape watches it.
        variable.trainable = False
        return variable

    @property
    def shard_variables(self) -> list:
        """The variables the step differentiates and :meth:`apply_shard_gradients` updates."""
        return [self.kernel]

    def _components(self, variable) -> list:
        """``[(global replica id, tf.Variable)]`` of the shards held by this process."""
        value = variable.value
        if not isinstance(value, tf.distribute.DistributedValues):
            return [(0, value)]
        if self._local_ids is None:
            strategy = value._distribute_strategy
            ids = strategy.run(lambda: tf.distribute.get_replica_context().replica_id_in_sync_group)
            self._local_ids = [int(i) for i in strategy.experimental_local_results(ids)]
        return list(zip(self._local_ids, value.values))

    def assign_full(self, variable, full) -> None:
        """Assigns a ``[D, C]`` matrix (ArcMarginHead's kernel layout) to the shards of ``variable``."""
        full = np.asarray(full, dtype=np.float32)
        expected = (self.embedding_size, self.num_classes)
        if full.shape != expected:
            raise ValueError(f"{self.name}/{variable.name}: expected a {list(expected)} matrix, received {list(full.shape)}")
        rows = np.zeros((self.num_shards * self.shard_size, self.embedding_size), np.float32)
        rows[: self.num_classes] = full.T
        for replica, component in self._components(variable):
            component.assign(rows[replica * self.shard_size: (replica + 1) * self.shard_size])

    def full_value(self, variable) -> np.ndarray:
        """The ``[D, C]`` matrix of all shards of ``variable`` (see :meth:`gather_shards` for multi-worker)."""
        components = self._components(variable)
        if len(components) == self.num_shards:
            rows = np.concatenate([np.asarray(c.read_value()) for _, c in sorted(components, key=lambda p: p[0])])
        elif variable.name in self._gathered:
            rows = self._gathered[variable.name]
        else:
            raise RuntimeError(f"{self.name}: {len(components)} of {self.num_shards} shards are local; call "
                               "gather_shards() on every worker before saving")
        return rows[: self.num_classes].T

    def gather_shards(self) -> None:
        """Collective (every worker must call it): copies all shards to host memory for saving."""
        variables = [self.kernel, self.momentum]
        value = self.kernel.value
        if not isinstance(value, tf.distribute.DistributedValues) or len(value.values) == self.num_shards:
            return
        strategy = value._distribute_strategy

        def gather():
            ctx = tf.distribute.get_replica_context()
            return [ctx.all_gather(tf.convert_to_tensor(v.value)[None], axis=0) for v in variables]

        results = strategy.experimental_local_results(strategy.run(tf.function(gather)))[0]
        for variable, stacked in zip(variables, results):
            self._gathered[variable.name] = np.asarray(stacked).reshape(-1, self.embedding_size)

    def save_own_variables(self, store):
        store["0"] = self.full_value(self.kernel)
        store["1"] = self.full_value(self.momentum)

    def load_own_variables(self, store):
        if sorted(store.keys()) != ["0", "1"]:
            raise ValueError(f"{self.name}: a Partial FC checkpoint holds the centres and their momentum, received "
                             f"entries {sorted(store.keys())} (a checkpoint of the replicated head? use "
                             "--head_sharding=none)")
        self.assign_full(self.kernel, store["0"])
        self.assign_full(self.momentum, store["1"])

    # -- the loss ---------------------------------------------------------------------------------

    def _gather_batch(self, embeddings, labels, sample_weight):
        """The global batch on every replica: embeddings, labels, weights, this replica's id."""
        embeddings = tf.cast(embeddings, self.compute_dtype)
        labels = tf.reshape(tf.cast(labels, "int32"), [-1])
        weights = tf.ones_like(labels, dtype=embeddings.dtype) if sample_weight is None else \
            tf.reshape(tf.cast(sample_weight, embeddings.dtype), [-1])
        if self.num_shards == 1:
            return embeddings, labels, weights, tf.constant(0, "int32")
        ctx = _replica_context()
        gathered = [ctx.all_gather(t, axis=0) for t in (embeddings, labels, weights)]
        return (*gathered, tf.cast(ctx.replica_id_in_sync_group, "int32"))

    def _real_centres(self, replica):
        """Centres of this shard that are real classes (the last shard may be padded)."""
        return tf.clip_by_value(self.num_classes - replica * self.shard_size, 0, self.shard_size)

    def select_centres(self, labels, replica, step):
        """Sorted shard-local indices of the centres scored this step: every centre that is a label
        of the global batch, plus uniformly drawn others, ``ceil(rate · n)`` in all (more if the
        batch's positives alone exceed that)."""
        real = self._real_centres(replica)
        local = labels - replica * self.shard_size
        positives = tf.boolean_mask(local, (local >= 0) & (local < real))
        seed = tf.stack([tf.cast(self.seed, "int64") * 1_000_003 + tf.cast(replica, "int64"), tf.cast(step, "int64")])
        draw = tf.random.stateless_uniform([self.shard_size], seed=seed)
        draw = tf.where(tf.range(self.shard_size) < real, draw, -1.0)  # padding is never drawn
        draw = tf.tensor_scatter_nd_update(draw, positives[:, None], tf.fill(tf.shape(positives), 2.0))
        num_positive = tf.reduce_sum(tf.cast(draw > 1.5, "int32"))
        wanted = tf.cast(tf.math.ceil(self.sample_rate * tf.cast(real, "float32")), "int32")
        count = tf.minimum(tf.maximum(wanted, num_positive), real)
        return tf.sort(tf.math.top_k(draw, k=count).indices)

    def _logits(self, embeddings, centres, one_hot):
        """Margin logits ``s·cos θ`` (target entries ``s·target(cos θ_y)``) against ``centres`` ``[n, D]``."""
        cos = tf.matmul(l2_normalize(embeddings, axis=1), l2_normalize(centres, axis=1), transpose_b=True)
        cos = tf.clip_by_value(cos, -1.0 + COS_CLIP, 1.0 - COS_CLIP)
        cos_target = tf.reduce_sum(cos * one_hot, axis=1, keepdims=True)
        return (cos + one_hot * (self._margin_head.target_logit(cos_target) - cos_target)) * self.scale

    def call(self, embeddings, labels, sample_weight=None, step=0, training=None):
        embeddings, labels, weights, replica = self._gather_batch(embeddings, labels, sample_weight)
        kernel = tf.convert_to_tensor(self.kernel)  # this replica's shard (a watched, trainable TF variable)
        if training and self.sample_rate < 1.0:
            index = self.select_centres(labels, replica, step)
            centres = tf.gather(kernel, index)
            valid = tf.ones_like(index, dtype="bool")
            local = labels - replica * self.shard_size
            position = tf.searchsorted(index, local)
            hit = tf.gather(index, tf.minimum(position, tf.size(index) - 1)) == local
            one_hot = tf.one_hot(position, tf.size(index), dtype=centres.dtype) * tf.cast(hit, centres.dtype)[:, None]
        else:
            centres = kernel
            valid = tf.range(self.shard_size) < self._real_centres(replica)
            one_hot = tf.one_hot(labels - replica * self.shard_size, self.shard_size, dtype=centres.dtype)
        losses = sharded_softmax_cross_entropy(self._logits(embeddings, centres, one_hot), one_hot, valid,
                                               self.num_shards)
        global_batch = tf.cast(tf.size(labels), losses.dtype)
        return tf.reduce_sum(weights * losses) / global_batch / self.num_shards

    # -- the update ---------------------------------------------------------------------------------

    def apply_shard_gradients(self, gradients, optimizer, finite=None) -> None:
        """Updates this replica's shard with its own gradient (never all-reduced).

        ``optimizer`` is the model's :class:`~pocketnet_tf.fitting.torch_sgd.TorchSGD` (or a loss-scale
        wrapper of one): its learning rate at the current step, momentum, coupled weight decay and
        Nesterov flag are applied exactly as for the backbone. Call before the optimiser's own
        ``apply_gradients`` (which advances the step). ``finite`` (a boolean scalar, the step's
        all-replica verdict): when False nothing changes (the divergence guard, fp16 overflow).
        """
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        if not hasattr(inner, "apply_torch_sgd"):
            raise TypeError(f"{self.name}: the Partial FC head needs TorchSGD, received {type(inner).__name__}")
        unscale = optimizer.scale_loss(tf.constant(1.0))  # 1 unless a loss-scale wrapper scales the loss
        for variable, gradient in zip(self.shard_variables, gradients):
            gradient = tf.convert_to_tensor(gradient) / tf.cast(unscale, variable.dtype)
            inner.apply_torch_sgd(gradient, variable, self.momentum, optimizer.learning_rate, finite=finite)

    def get_config(self):
        config = super().get_config()
        config.update({"num_classes": self.num_classes, "kind": self.kind, "scale": self.scale,
                       "margin": self.margin, "sample_rate": self.sample_rate, "seed": self.seed})
        return config
