"""``python -m pocketnet_tf.search --flagfile=configs/search_casia.flags --workdir=DIR [--resume]``.

Differentiable architecture search of PocketNet cells (spec §2). Writes DIR/genotype.json (use it
as ``python -m pocketnet_tf.train --genotype=DIR/genotype.json``), DIR/genotype.txt (the
original's text form), pictures, per-epoch history and checkpoints; see docs/search.md and
``--helpfull``. Exit status 2 with a one-line message on a bad configuration or bad data.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from pocketnet_tf.search import flags as search_flags  # noqa: E402

search_flags.define_search_flags()
flags.adopt_module_key_flags(search_flags)
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    from pocketnet_tf.genotypes import GenotypeError
    from pocketnet_tf.search import runner
    from pocketnet_tf.search.config import SearchConfig

    try:
        config = SearchConfig.from_flags(search_flags.search_flag_values())
        results = runner.run(config)
    except (ValueError, FileNotFoundError, GenotypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary = {k: results[k] for k in ("genotype_text", "genotype_json", "selected_epoch", "val_accuracy",
                                       "pictures", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    app.run(main)
