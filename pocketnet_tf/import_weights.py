"""Import an original PyTorch checkpoint into a ``.keras`` file.

    python -m pocketnet_tf.import_weights --model PocketNetS-128 --pytorch 295672backbone.pth \\
        --out pocketnet_s128.keras [--embedding_size=N] [--genotype=NAME_OR_FILE]

The checkpoint is read weights-only (no code from the file runs). Any missing, unexpected or
mis-shaped tensor aborts with one message listing all of them; nothing is written then.
See docs/importing.md.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from pocketnet_tf.importers.checkpoint import ImportConfig, import_checkpoint

    try:
        config = ImportConfig.from_flags(FLAGS)
        _, report = import_checkpoint(config)
    except (ValueError, OSError) as err:  # OSError: the --out path cannot be written (io_utils.OutputError)
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"imported {report.assigned} tensors ({report.parameters:,} values; "
        f"{report.dropped} num_batches_tracked counters dropped) from {config.pytorch} "
        f"into {config.model} -> {config.out}"
    )
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.importers import flags as importer_flags

    importer_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(importer_flags)  # listed by --help
    app.run(main, flags_parser=parse_flags)
