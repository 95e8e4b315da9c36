"""``python -m pocketnet_tf.benchmark train --model=NAME --batch-size=B --steps=N [--jit] [--kd [--teacher=NAME]] [--precision=P] [--json]``,
``python -m pocketnet_tf.benchmark input --data=PATH --batch-size=B [--threads=N] [--json]``
(the input pipeline: :mod:`pocketnet_tf.data.throughput`), ``... head`` (below) and
``python -m pocketnet_tf.benchmark kd --flagfile=F --seeds=N --out=DIR [--json]`` (the KD ablation:
:mod:`pocketnet_tf.train.ablation`).

Times the real training step (the MarginModel/DistillationModel ``train_step`` with an ArcFace
head, PyTorch-style SGD and backbone clipping) on random in-memory batches, after ``--warmup``
untimed steps, and reports ``images_per_s``. Figures depend on the machine and on what else runs
on it. Flag names may use dashes or underscores. ``--precision`` builds the model under that
dtype policy with the optimiser ``train --precision`` uses (the JSON reports it as ``precision``).

``python -m pocketnet_tf.benchmark head --num-classes=N --embedding-size=D --batch-size=B --replicas=K
[--sample-rate=R] [--head-sharding=auto|none] [--json]`` times the margin head's step alone on K
logical CPU devices (Partial FC vs the replicated head) and reports ``head_bytes_per_replica``.

Timing: one ``fit`` of warm-up + timed steps; a callback reads each step's loss (which waits for
the step, as a progress bar does) and the clock runs from the end of the last warm-up step to the
end of the last step. Timing a whole ``fit(verbose=0)`` instead is wrong on TensorFlow: nothing
waits for the steps until ``fit`` returns, and that final wait polls with a doubling sleep, so the
measured time rounds up to 10 ms x (2^k - 1) (10.23 s, 20.47 s, 40.95 s, ...) and can overstate a
step by up to 2x.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from pocketnet_tf import flags as pn_flags  # noqa: E402

pn_flags.define_benchmark_flags()
pn_flags.define_head_benchmark_flags()
FLAGS = flags.FLAGS
USAGE = ("usage: python -m pocketnet_tf.benchmark train --model=NAME --batch-size=B --steps=N [--jit] "
         "[--kd [--teacher=NAME]] [--precision=P] [--json]\n"
         "   or: python -m pocketnet_tf.benchmark input --data=PATH --batch-size=B [--threads=N] [--steps=N] [--json]\n"
         "   or: python -m pocketnet_tf.benchmark head --num-classes=N --embedding-size=D --batch-size=B "
         "--replicas=K [--sample-rate=R] [--head-sharding=auto|none] [--json]\n"
         "   or: python -m pocketnet_tf.benchmark kd --flagfile=TRAIN_FLAGFILE --seeds=N --out=DIR [--json]")
KD_USAGE = ("usage: python -m pocketnet_tf.benchmark kd --flagfile=TRAIN_FLAGFILE --seeds=N --out=DIR "
            "[--arms=none,single,multistep] [--json]")


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


def benchmark_kd() -> int:
    """``benchmark kd``: the seeded KD ablation of :mod:`pocketnet_tf.train.ablation`."""
    from pocketnet_tf.train import ablation

    if not FLAGS.kd_flagfile or not FLAGS.out:
        raise app.UsageError(KD_USAGE)
    log = (lambda msg: print(msg, file=sys.stderr)) if FLAGS.json else print
    try:
        report = ablation.run_ablation(FLAGS.kd_flagfile, FLAGS.out, seeds=FLAGS.seeds, arms=FLAGS.arms,
                                       bin_name=FLAGS.verification_set, log=log)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if FLAGS.json:
        print(json.dumps({"modes": report["modes"], "paired": report["paired"],
                          "verification_set": report["verification_set"], "seeds": report["seeds"]}))
    else:
        print(ablation.format_markdown(report))
    return 0


def kd_argv(argv: list) -> list:
    """``benchmark kd --flagfile=F``: F is a *training* flagfile, not this command's, so it is handed
    over as ``--kd_flagfile`` instead of being spliced in by absl."""
    if len(argv) < 2 or argv[1] != "kd":
        return argv
    return [a.replace("--flagfile=", "--kd_flagfile=", 1) if a.startswith("--flagfile=") else a for a in argv]


def _input_main() -> int:
    """``benchmark input``: the input pipeline's rate beside the decode-only rate."""
    from pocketnet_tf.data import throughput

    if FLAGS.data is None:
        raise app.UsageError("input needs --data")
    try:
        result = throughput.benchmark_input(FLAGS.data, batch_size=FLAGS.batch_size, threads=FLAGS.threads,
                                            steps=FLAGS.steps, warmup=FLAGS.warmup)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if FLAGS.json else throughput.describe(result))
    return 0


def main(argv):
    args = argv[1:]
    if args == ["input"]:
        return _input_main()
    if args == ["kd"]:
        return benchmark_kd()
    if args == ["head"]:
        return _report(_run_head, lambda r: (
            f"{r['head']}, batch {r['batch_size']} on {r['replicas']} replica(s): {r['ms_per_step']} ms/step, "
            f"{r['head_bytes_per_replica'] / 2**20:.1f} MiB head per replica"))
    if args != ["train"]:
        raise app.UsageError(USAGE)
    return _report(lambda: benchmark_train(FLAGS.model, FLAGS.batch_size, FLAGS.steps, warmup=FLAGS.warmup,
                                           input_size=FLAGS.input_size, num_classes=FLAGS.num_classes, jit=FLAGS.jit,
                                           kd=FLAGS.kd, teacher=FLAGS.teacher, precision=FLAGS.precision), lambda r: (
        f"{r['model']} batch {r['batch_size']}{' (XLA)' if r['jit'] else ''} {r['precision']}: "
        f"{r['images_per_s']} images/s, {r['ms_per_step']} ms/step over {r['steps']} steps"))


def _run_head():
    return benchmark_head(FLAGS.num_classes, FLAGS.embedding_size, FLAGS.batch_size, replicas=FLAGS.replicas,
                          sample_rate=FLAGS.sample_rate, head_sharding=FLAGS.head_sharding, steps=FLAGS.steps,
                          warmup=FLAGS.warmup)


def _report(run, describe) -> int:
    """Runs a benchmark; prints its JSON (``--json``) or ``describe(result)``; exit 2 on a bad value."""
    try:
        result = run()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if FLAGS.json else describe(result))
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags

    app.run(main, flags_parser=lambda argv: parse_flags(kd_argv(argv)))
