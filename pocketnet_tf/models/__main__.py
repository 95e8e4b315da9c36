"""``python -m pocketnet_tf.models list`` / ``summary NAME [--json]``: the model registry and size report."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

_JSON = flags.DEFINE_boolean("json", False, "Print the summary as JSON.")
_EMB = flags.DEFINE_integer("embedding_size", None, "Override the preset's embedding size.", lower_bound=1)
_GENO = flags.DEFINE_string("genotype", None, "PocketNet only: genotype name, JSON/text file.")
_INPUT = flags.DEFINE_integer("input_size", 112, "Square input side.", lower_bound=16)

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
        s = summary.summarize(args[1], embedding_size=_EMB.value, genotype=_GENO.value, input_size=_INPUT.value)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(s, indent=2) if _JSON.value else summary.format_summary(s))
    return 0


if __name__ == "__main__":
    app.run(main)
