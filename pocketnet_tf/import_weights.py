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

_MODEL = flags.DEFINE_string("model", None, "Registry name: PocketNetS-128, PocketNetM-256, iresnet100, ...")
_PYTORCH = flags.DEFINE_string("pytorch", None, "The original state_dict (.pth/.pt from torch.save, or .safetensors).")
_OUT = flags.DEFINE_string("out", None, "Output .keras file (written atomically).")
_EMB = flags.DEFINE_integer("embedding_size", None, "Override the preset's embedding size.", lower_bound=1)
_GENO = flags.DEFINE_string("genotype", None, "PocketNet only: genotype name, JSON/text or file.")
flags.mark_flags_as_required(["model", "pytorch", "out"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from pocketnet_tf.importers.convert import ImportConfig, import_checkpoint

    try:
        config = ImportConfig(
            model=_MODEL.value, pytorch=_PYTORCH.value, out=_OUT.value,
            embedding_size=_EMB.value, genotype=_GENO.value,
        )
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
    app.run(main)
