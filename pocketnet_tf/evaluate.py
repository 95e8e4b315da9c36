"""Evaluate a face-embedding model: ``python -m pocketnet_tf.evaluate``.

    python -m pocketnet_tf.evaluate --model=run/model.keras --bin=data/lfw.bin,data/agedb_30.bin \\
        [--ijb=data/IJB_release/IJBC --ijb_set=IJBC] --out=eval_out

The model may be a ``.keras`` file, a SavedModel directory or a ``.tflite`` file. Results go to
``<out>/results.json`` with ROC curves as PNG files; see docs/evaluation.md. Flags with dashes
(``--ijb-set``) are accepted too. A bad input file ends the run with a one-line message and
exit code 1.
"""

from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS


def _parse(argv):
    try:
        from pocketnet_tf.cli import normalize_dashes

        return FLAGS(normalize_dashes(argv, FLAGS))
    except flags.Error as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        sys.exit(1)


def main(argv):
    if len(argv) > 1:
        print(f"evaluate: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    from pocketnet_tf.eval.config import EvalConfig

    try:
        config = EvalConfig.from_flags(FLAGS)
        from pocketnet_tf.eval.runner import run_evaluation

        results = run_evaluation(config)
    except (FileNotFoundError, ValueError) as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the --out directory cannot be written (io_utils.OutputError names it)
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2
    for name, entry in results["sets"].items():
        if "accuracy" in entry:
            print(f"{name}: accuracy {entry['accuracy']:.5f} +- {entry['accuracy_std']:.5f} "
                  f"({entry['pairs']} pairs), XNorm {entry['xnorm']:.4f}")
        else:
            print(f"{name}: TAR@FAR=1e-4 {entry['tar_at_far']['1e-04']:.4f} ({entry['pairs']} pairs)")
    print(f"wrote {config.out}/results.json")
    return 0


if __name__ == "__main__":
    from pocketnet_tf.eval import flags as eval_flags

    eval_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(eval_flags)  # listed by --help
    app.run(main, flags_parser=_parse)
