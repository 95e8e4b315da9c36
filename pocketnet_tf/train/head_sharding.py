"""The training command's side of Partial FC (``--head_sharding``, ``--head_sample_rate``).

- :func:`build_training_head` picks the replicated margin head or the sharded
  :class:`~pocketnet_tf.layers.partial_fc.PartialFCHead` for the strategy in scope;
- :func:`saved_head_is_sharded` tells whether a checkpoint holds a Partial FC head (and
  :func:`resumed_head_is_sharded` for the one ``--resume`` restores), so that
  ``--head_sharding=auto`` keeps it when a run resumes on a single replica (re-sharded on load);
- :class:`GatherHeadShards` makes every worker of a ``MultiWorkerMirroredStrategy`` run copy
  the shards to the chief right before the chief's checkpoint is written (a worker only holds its
  own shard; the copy is a collective, so all workers must take part at the same steps);
- :func:`split_cpu` splits the CPU into logical devices, so ``--strategy=mirrored`` has several
  replicas on a CPU-only machine.
"""

from __future__ import annotations

from pathlib import Path

import keras

from pocketnet_tf.layers.margin import build_head
from pocketnet_tf.layers.partial_fc import PartialFCHead, use_partial_fc


def build_training_head(kind: str, num_classes: int, *, scale: float, margin, head_sharding: str = "auto",
                        sample_rate: float = 1.0, seed: int = 0, resuming_sharded: bool = False):
    """The margin head of a run (call under the strategy's scope)."""
    import tensorflow as tf

    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if use_partial_fc(head_sharding, replicas, sample_rate, resuming_sharded):
        return PartialFCHead(num_classes, kind=kind, scale=scale, margin=margin, sample_rate=sample_rate, seed=seed,
                             name="margin_head")
    return build_head(kind, num_classes, scale=scale, margin=margin, name="margin_head")


def saved_head_is_sharded(weights_path) -> bool:
    """True if a ``.weights.h5`` checkpoint of a MarginModel holds a Partial FC head (centres
    plus their momentum; the replicated head stores its centres only)."""
    import h5py

    path = Path(weights_path)
    try:
        with h5py.File(path, "r") as f:
            head = f.get("head/vars")
            return head is not None and sorted(head.keys()) == ["0", "1"]
    except OSError as err:
        raise ValueError(f"{path}: unreadable checkpoint ({err})") from err


def resumed_head_is_sharded(directory) -> bool:
    """Whether the checkpoint a ``--resume`` will restore from ``directory`` holds a Partial FC head:
    the newest readable ``ckpt-*.weights.h5`` (an unreadable newest one is skipped, as the restore
    itself falls back past it); False without checkpoints."""
    for path in sorted(Path(directory).glob("ckpt-*.weights.h5"), reverse=True):
        try:
            return saved_head_is_sharded(path)
        except ValueError:
            continue
    return False


class GatherHeadShards(keras.callbacks.Callback):
    """Runs :meth:`PartialFCHead.gather_shards` at the steps where :class:`ResumableCheckpoint`
    saves (every ``every_steps`` global steps and at epoch ends). Give it to every worker and place
    it before the checkpoint callback; it does nothing when all shards are local."""

    def __init__(self, every_steps: int = 0):
        super().__init__()
        self.every_steps = int(every_steps)

    def _gather(self):
        head = getattr(self.model, "head", None)
        if isinstance(head, PartialFCHead):
            head.gather_shards()

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and int(self.model.optimizer.iterations.numpy()) % self.every_steps == 0:
            self._gather()

    def on_epoch_end(self, epoch, logs=None):
        self._gather()


def split_cpu(count: int) -> None:
    """Splits the first CPU into ``count`` logical devices (0 or 1: leave it); must run before
    TensorFlow initialises its devices."""
    import tensorflow as tf

    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as err:
        raise RuntimeError(f"--logical_cpus={count}: TensorFlow's devices are already initialised ({err})") from err


def describe_head(head) -> str:
    """One log line: which head, and for Partial FC its shards and sampling."""
    if isinstance(head, PartialFCHead):
        return (f"Partial FC {head.kind}, {head.num_classes} classes in {head.num_shards} shard(s) of "
                f"{head.shard_size}, sample rate {head.sample_rate}")
    return f"{type(head).__name__}, {head.num_classes} classes on every replica"
