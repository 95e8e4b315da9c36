"""``python -m pocketnet_tf.benchmark train --model=NAME --batch-size=B --steps=N [--jit] [--kd [--teacher=NAME]] [--json]``.

Times the real training step (the MarginModel/DistillationModel ``train_step`` with an ArcFace
head, PyTorch-style SGD and backbone clipping) on random in-memory batches, after ``--warmup``
untimed steps, and reports ``images_per_s``. Figures depend on the machine and on what else runs
on it. Flag names may use dashes or underscores.

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
FLAGS = flags.FLAGS
USAGE = ("usage: python -m pocketnet_tf.benchmark train --model=NAME --batch-size=B --steps=N [--jit] "
         "[--kd [--teacher=NAME]] [--json]")


def benchmark_train(model_name: str, batch_size: int, steps: int, *, warmup: int = 3, input_size: int = 112,
                    num_classes: int = 1000, jit: bool = False, kd: bool = False,
                    teacher: str | None = None) -> dict:
    """Trains ``steps`` steps after ``warmup`` and returns throughput figures."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pocketnet_tf import models
    from pocketnet_tf.layers.margin import ArcMarginHead
    from pocketnet_tf.train.distiller import DistillationModel, MarginModel
    from pocketnet_tf.train.optimizer import TorchSGD

    keras.utils.set_random_seed(0)
    backbone = models.build(model_name, input_size=input_size)
    head = ArcMarginHead(num_classes)
    teacher_name = (teacher or model_name) if kd else None
    if kd:
        teacher_model = models.build(teacher_name, input_size=input_size, embedding_size=backbone.output.shape[-1])
        teacher_model.trainable = False
        model = DistillationModel(backbone, head, teacher=teacher_model)
    else:
        model = MarginModel(backbone, head)
    model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0), jit_compile=bool(jit))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch_size, input_size, input_size, 3)).astype(np.float32)
    y = rng.integers(0, num_classes, batch_size).astype(np.int32)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    ends = []

    class _StepClock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            ends.append(time.perf_counter())

        def on_train_batch_end(self, batch, logs=None):
            float(logs["loss"])  # waits for the step
            ends.append(time.perf_counter())

    model.fit(data, steps_per_epoch=warmup + steps, epochs=1, verbose=0, callbacks=[_StepClock()])
    warmup_s = ends[warmup] - ends[0]
    seconds = ends[-1] - ends[warmup]
    step_ms = sorted(1e3 * (b - a) for a, b in zip(ends[warmup:-1], ends[warmup + 1:]))
    return {
        "model": model_name, "batch_size": batch_size, "steps": steps, "input_size": input_size, "jit": bool(jit),
        "kd": bool(kd), "teacher": teacher_name, "seconds": round(seconds, 3), "ms_per_step": round(1e3 * seconds / steps, 1),
        "images_per_s": round(steps * batch_size / seconds, 1), "warmup_seconds": round(warmup_s, 1),
        "step_ms_min": round(step_ms[0], 1), "step_ms_median": round(step_ms[len(step_ms) // 2], 1),
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "cpu_count": os.cpu_count(),
    }


def main(argv):
    args = argv[1:]
    if args != ["train"]:
        raise app.UsageError(USAGE)
    try:
        result = benchmark_train(FLAGS.model, FLAGS.batch_size, FLAGS.steps, warmup=FLAGS.warmup,
                                 input_size=FLAGS.input_size, num_classes=FLAGS.num_classes, jit=FLAGS.jit,
                                 kd=FLAGS.kd, teacher=FLAGS.teacher)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if FLAGS.json:
        print(json.dumps(result))
    else:
        print(f"{result['model']} batch {result['batch_size']}{' (XLA)' if result['jit'] else ''}: "
              f"{result['images_per_s']} images/s, {result['ms_per_step']} ms/step over {result['steps']} steps")
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags

    app.run(main, flags_parser=parse_flags)
