"""``python -m pocketnet_tf.search --flagfile=configs/search_casia.flags --workdir=DIR [--resume]``.

Differentiable architecture search of PocketNet cells (spec §2). Writes DIR/genotype.json (use it
as ``python -m pocketnet_tf.train --genotype=DIR/genotype.json``), DIR/genotype.txt (the
original's text form), pictures, per-epoch history and checkpoints; see docs/search.md and
``--helpfull``. Exit status 2 with a one-line message on a bad configuration or bad data.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS

SUMMARY_KEYS = ("genotype_text", "genotype_json", "selected_epoch", "val_accuracy", "pictures", "seconds")


def main(argv):
    from pocketnet_tf.allocator import AllocatorError, preload_and_reexec

    try:  # restarts the command with the allocator preloaded (before TensorFlow is imported)
        preload_and_reexec(FLAGS.allocator, sys.argv)
    except AllocatorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from pocketnet_tf.genotypes import GenotypeError
    from pocketnet_tf.run_config import run_command
    from pocketnet_tf.search import runner
    from pocketnet_tf.search.config import SearchConfig

    return run_command(argv, lambda: SearchConfig.from_flags(FLAGS), runner.run, (GenotypeError,),
                       lambda results: {k: results[k] for k in SUMMARY_KEYS})


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.search import flags as search_flags

    search_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(search_flags)
    flags.mark_flag_as_required("workdir")
    app.run(main, flags_parser=parse_flags)
