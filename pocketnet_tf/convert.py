"""Convert a face-embedding model to TFLite, validate it and write the verification bundle.

    python -m pocketnet_tf.convert --model=run/model.keras --mode=int8 --out=export/s128_int8 \\
        --representative=data/faces_emore --bin=data/lfw.bin [--raw_input] [--l2_normalize]

Modes: fp32, fp16, dynamic, int8, int16x8 (see tflite/README.md for what each uses and why).
On success ``--out`` holds model.tflite, metadata.json, golden/ and report.json/report.md. A
conversion that misses its validation thresholds exits with code 3 after writing
``failed_report.json``/``failed_report.md`` and nothing else; bad input exits with code 1.
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
    from pocketnet_tf.export.config import ExportConfig
    from pocketnet_tf.export.exporter import ExportValidationError, run_export
    from pocketnet_tf.export.validate import markdown_report

    try:
        config = ExportConfig.from_flags(FLAGS)
        report = run_export(config)
    except ExportValidationError as err:
        print(markdown_report(err.report), end="")
        print(f"convert: validation failed, no model written: {err}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as err:
        print(f"convert: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the --out directory cannot be written (io_utils.OutputError names it)
        print(f"convert: error: {err}", file=sys.stderr)
        return 2
    print(markdown_report(report), end="")
    print(f"convert: wrote {config.out}")
    return 0


def run() -> None:
    """Defines the flags (:func:`pocketnet_tf.export.flags.define_flags`) and runs the command."""
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.export import flags as export_flags

    export_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(export_flags)  # listed by --help
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
