"""``python -m pocketnet_tf.models list`` / ``summary NAME [--json]``: the model registry and size report."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

USAGE = "usage: python -m pocketnet_tf.models list | summary NAME [--json] [--embedding_size=N] [--genotype=FILE]"


def main(argv):
    from pocketnet_tf.models import registry, summary

    args = argv[1:]
    if not args or args[0] not in ("list", "summary"):
        raise app.UsageError(USAGE)
    if args[0] == "list":
        for name, preset in registry.PRESETS.items():
            print(f"{name:<16} {preset.description}")
        return 0
    if len(args) != 2:
        raise app.UsageError(USAGE)
    try:
        s = summary.summarize(args[1], embedding_size=FLAGS.embedding_size, genotype=FLAGS.genotype,
                              input_size=FLAGS.input_size)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(s, indent=2) if FLAGS.json else summary.format_summary(s))
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.models import flags as model_flags

    model_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(model_flags)  # listed by --help
    app.run(main, flags_parser=parse_flags)
