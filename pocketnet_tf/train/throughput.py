"""Training-step throughput: the library behind ``python -m pocketnet_tf.benchmark train | head``.

:func:`benchmark_train` times the real training step (the MarginModel/DistillationModel
``train_step`` with an ArcFace head, PyTorch-style SGD and backbone clipping) on random in-memory
batches, after ``warmup`` untimed steps, and reports ``images_per_s``; ``precision`` builds the
model under that dtype policy with the optimiser ``train --precision`` uses. :func:`benchmark_head`
times the margin head's step alone on K logical CPU devices (Partial FC vs the replicated head).
Figures depend on the machine and on what else runs on it.

Timing (:func:`timed_fit`): one ``fit`` of warm-up + timed steps; a callback reads each step's
loss (which waits for the step, as a progress bar does) and the clock runs from the end of the
last warm-up step to the end of the last step. Timing a whole ``fit(verbose=0)`` instead is wrong
on TensorFlow: nothing waits for the steps until ``fit`` returns, and that final wait polls with a
doubling sleep, so the measured time rounds up to 10 ms x (2^k - 1) (10.23 s, 20.47 s, 40.95 s,
...) and can overstate a step by up to 2x.
"""

from __future__ import annotations

import os
import time


def benchmark_train(model_name: str, batch_size: int, steps: int, *, warmup: int = 3, input_size: int = 112,
                    num_classes: int = 1000, jit: bool = False, kd: bool = False,
                    teacher: str | None = None, precision: str = "float32") -> dict:
    """Trains ``steps`` steps after ``warmup`` and returns throughput figures."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pocketnet_tf import models
    from pocketnet_tf.layers.margin import ArcMarginHead
    from pocketnet_tf.train.distiller import DistillationModel, MarginModel
    from pocketnet_tf.train.optimizer import TorchSGD
    from pocketnet_tf.train.precision import optimizer_options, precision_scope

    keras.utils.set_random_seed(0)
    teacher_name = (teacher or model_name) if kd else None
    with precision_scope(precision):
        backbone = models.build(model_name, input_size=input_size)
        head = ArcMarginHead(num_classes)
        if kd:
            teacher_model = models.build(teacher_name, input_size=input_size, embedding_size=backbone.output.shape[-1])
            teacher_model.trainable = False
            model = DistillationModel(backbone, head, teacher=teacher_model)
        else:
            model = MarginModel(backbone, head)
    model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0, **optimizer_options(precision)), jit_compile=bool(jit))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size, input_size, input_size, 3)).astype(np.float32)
    y = rng.integers(0, num_classes, batch_size).astype(np.int32)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    timing = timed_fit(model, data, warmup, steps)
    return {
        "model": model_name, "batch_size": batch_size, "steps": steps, "input_size": input_size, "jit": bool(jit),
        "kd": bool(kd), "teacher": teacher_name, "precision": precision, **timing,
        "images_per_s": round(steps * batch_size / timing["seconds"], 1),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "cpu_count": os.cpu_count(),
    }


def benchmark_head(num_classes: int, embedding_size: int = 128, batch_size: int = 128, *, replicas: int = 1,
                   sample_rate: float = 1.0, head_sharding: str = "auto", steps: int = 5, warmup: int = 2) -> dict:
    """Times the margin head's training step alone on ``replicas`` logical CPU devices.

    The backbone is one Dense layer on random ``embedding_size`` vectors, so the step is the real
    MarginModel step (TorchSGD, backbone clipping and all-reduce) dominated by the head: the
    replicated ArcFace head (``--head-sharding=none``, or ``auto`` on one replica at rate 1) or
    Partial FC. ``head_bytes_per_replica`` counts the centres and their momentum one replica holds.
    """
    import resource

    from pocketnet_tf.train.head_sharding import split_cpu

    split_cpu(replicas)  # before TensorFlow initialises its devices
    import keras
    import numpy as np
    import tensorflow as tf

    from pocketnet_tf.train.distiller import MarginModel
    from pocketnet_tf.train.head_sharding import build_training_head, describe_head
    from pocketnet_tf.train.optimizer import TorchSGD

    if batch_size % replicas:
        raise ValueError(f"--batch-size={batch_size} is not divisible by --replicas={replicas}")
    strategy = (tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)]) if replicas > 1
                else tf.distribute.get_strategy())
    keras.utils.set_random_seed(0)
    with strategy.scope():
        inputs = keras.Input((embedding_size,), name="features")
        backbone = keras.Model(inputs, keras.layers.Dense(embedding_size, name="fc")(inputs), name="backbone")
        head = build_training_head("arcface", num_classes, scale=64.0, margin=None, head_sharding=head_sharding,
                                   sample_rate=sample_rate)
        model = MarginModel(backbone, head)
        model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0))
        model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size, embedding_size)).astype(np.float32)
    y = rng.integers(0, num_classes, batch_size).astype(np.int32)
    timing = timed_fit(model, tf.data.Dataset.from_tensors((x, y)).repeat(), warmup, steps)
    return {
        "num_classes": num_classes, "embedding_size": embedding_size, "batch_size": batch_size, "replicas": replicas,
        "sample_rate": sample_rate, "head_sharding": head_sharding, "head": describe_head(model.head),
        "head_bytes_per_replica": _head_bytes_per_replica(model), "steps": steps, **timing,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpu_count": os.cpu_count(),
    }


def _head_bytes_per_replica(model) -> int:
    """Bytes of centres + optimiser state of the head held by one replica."""
    import numpy as np

    from pocketnet_tf.layers.partial_fc import PartialFCHead

    head = model.head
    if isinstance(head, PartialFCHead):
        variables = [head.kernel, head.momentum]
    else:
        keys = {id(v) for v in head.trainable_variables}
        slots = [m for m, v in zip(model.optimizer.momentums, model.trainable_variables) if id(v) in keys]
        variables = list(head.trainable_variables) + slots
    return int(sum(int(np.prod(v.shape)) * 4 for v in variables))


def timed_fit(model, data, warmup: int, steps: int) -> dict:
    """One ``fit`` of ``warmup + steps`` steps; the clock runs from the end of the last warm-up
    step to the end of the last step (see the module doc). Returns seconds and ms per step."""
    import keras

    ends = []

    class _StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            ends.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the step
            ends.append(time.perf_counter())

    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[_StepClock()])
    seconds = ends[-1] - ends[warmup]
    step_ms = sorted(1e3 * (b - a) for a, b in zip(ends[warmup:-1], ends[warmup + 1:]))
    return {"seconds": round(seconds, 3), "ms_per_step": round(1e3 * seconds / steps, 1),
            "warmup_seconds": round(ends[warmup] - ends[0], 1), "step_ms_min": round(step_ms[0], 1),
            "step_ms_median": round(step_ms[len(step_ms) // 2], 1)}
