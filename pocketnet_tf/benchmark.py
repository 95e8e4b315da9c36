"""``python -m pocketnet_tf.benchmark train --model=NAME --batch-size=B --steps=N [--jit] [--kd [--teacher=NAME]] [--precision=P] [--json]``,
``python -m pocketnet_tf.benchmark input --data=PATH --batch-size=B [--threads=N] [--json]``
(the input pipeline: :mod:`pocketnet_tf.data.throughput`), ``... head`` (below) and
``python -m pocketnet_tf.benchmark kd --flagfile=F --seeds=N --out=DIR [--json]`` (the KD ablation:
:mod:`pocketnet_tf.train.ablation`).

``train`` times the real training step on random in-memory batches, after ``--warmup`` untimed
steps, and reports ``images_per_s`` (:mod:`pocketnet_tf.train.throughput`, which also says how the
steps are timed). Figures depend on the machine and on what else runs on it. Flag names may use
dashes or underscores. ``--precision`` builds the model under that dtype policy with the optimiser
``train --precision`` uses (the JSON reports it as ``precision``).

``python -m pocketnet_tf.benchmark head --num-classes=N --embedding-size=D --batch-size=B --replicas=K
[--sample-rate=R] [--head-sharding=auto|none] [--json]`` times the margin head's step alone on K
logical CPU devices (Partial FC vs the replicated head) and reports ``head_bytes_per_replica``.

A thin entry point: the flags are the training stage's (``train``, ``head``, ``kd`` and the timing
flags all share: :func:`pocketnet_tf.train.flags.define_benchmark_flags`) and the data stage's
(``input``: :func:`pocketnet_tf.data.flags.define_benchmark_flags`), defined only when this module
runs as the command.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
USAGE = ("usage: python -m pocketnet_tf.benchmark train --model=NAME --batch-size=B --steps=N [--jit] "
         "[--kd [--teacher=NAME]] [--precision=P] [--json]\n"
         "   or: python -m pocketnet_tf.benchmark input --data=PATH --batch-size=B [--threads=N] [--steps=N] [--json]\n"
         "   or: python -m pocketnet_tf.benchmark head --num-classes=N --embedding-size=D --batch-size=B "
         "--replicas=K [--sample-rate=R] [--head-sharding=auto|none] [--json]\n"
         "   or: python -m pocketnet_tf.benchmark kd --flagfile=TRAIN_FLAGFILE --seeds=N --out=DIR [--json]")
KD_USAGE = ("usage: python -m pocketnet_tf.benchmark kd --flagfile=TRAIN_FLAGFILE --seeds=N --out=DIR "
            "[--arms=none,single,multistep] [--json]")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The benchmark command's flags: the training stage's and the data stage's share of them."""
    from pocketnet_tf.data import flags as data_flags
    from pocketnet_tf.train import flags as train_flags

    train_flags.define_benchmark_flags(flag_values)
    data_flags.define_benchmark_flags(flag_values)


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
    from pocketnet_tf.train.throughput import benchmark_train

    return _report(lambda: benchmark_train(FLAGS.model, FLAGS.batch_size, FLAGS.steps, warmup=FLAGS.warmup,
                                           input_size=FLAGS.input_size, num_classes=FLAGS.num_classes, jit=FLAGS.jit,
                                           kd=FLAGS.kd, teacher=FLAGS.teacher, precision=FLAGS.precision), lambda r: (
        f"{r['model']} batch {r['batch_size']}{' (XLA)' if r['jit'] else ''} {r['precision']}: "
        f"{r['images_per_s']} images/s, {r['ms_per_step']} ms/step over {r['steps']} steps"))


def _run_head():
    from pocketnet_tf.train.throughput import benchmark_head

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

    from pocketnet_tf.data import flags as data_flags
    from pocketnet_tf.train import flags as train_flags

    define_flags(FLAGS)
    flags.adopt_module_key_flags(train_flags)  # listed by --help
    flags.adopt_module_key_flags(data_flags)
    app.run(main, flags_parser=lambda argv: parse_flags(kd_argv(argv)))
