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


def define_flags() -> None:
    flags.DEFINE_string("model", None, "Keras .keras file or SavedModel directory.")
    flags.DEFINE_enum("mode", "fp32", ["fp32", "fp16", "dynamic", "int8", "int16x8"], "Conversion mode.")
    flags.DEFINE_string("out", None, "Output directory of the bundle.")
    flags.DEFINE_string("representative", None,
                        "Calibration images: a dataset (RecordIO dir with train.rec/.idx, .rec, folder tree, "
                        ".tfrecord) or a verification .bin. Also the default source of held-out images.")
    flags.DEFINE_list("bin", [], "Verification .bin sets: accuracy of Keras vs TFLite; the first calibrates the threshold.")
    flags.DEFINE_string("validation_data", None, "Held-out images for the embedding comparison (default: "
                        "--representative images not used for calibration, else the first --bin).")
    flags.DEFINE_integer("num_calibration", 200, "Calibration images (int8, int16x8).", lower_bound=1)
    flags.DEFINE_integer("num_validation", 100, "Held-out images compared with Keras.", lower_bound=1)
    flags.DEFINE_integer("golden_count", 4, "Golden test vectors in the bundle.", lower_bound=1)
    flags.DEFINE_boolean("raw_input", False, "Fold the pixel normalisation into the model (app feeds RGB 0..255).")
    flags.DEFINE_boolean("l2_normalize", False, "Append L2 normalisation of the embedding.")
    flags.DEFINE_boolean("dynamic_batch", False, "Dynamic batch dimension (default: static batch 1).")
    flags.DEFINE_enum("prelu_rewrite", "auto", ["auto", "none", "decompose", "fold"],
                      "PReLU rewrite of the export graph (auto: fold for int8/int16x8, none otherwise).")
    flags.DEFINE_enum("backend", None, ["converter", "litert_quantizer"], "Quantisation tool (default per mode).")
    flags.DEFINE_float("min_cosine", None, "Override: minimum per-image cosine to Keras.")
    flags.DEFINE_float("mean_cosine", None, "Override: minimum mean cosine to Keras.")
    flags.DEFINE_float("p01_cosine", None, "Override: minimum 1st-percentile cosine to Keras.")
    flags.DEFINE_float("max_abs_error", None, "Override: maximum absolute embedding difference.")
    flags.DEFINE_float("max_accuracy_drop", None, "Override: maximum verification accuracy drop (points).")
    flags.DEFINE_float("far", 1e-3, "False accept rate at which the decision threshold is calibrated.")
    flags.DEFINE_integer("seed", 0, "Seed of the calibration / held-out image draw.", lower_bound=0)
    flags.DEFINE_integer("num_threads", 1, "LiteRT threads for validation.", lower_bound=1)
    flags.DEFINE_integer("latency_runs", 20, "Times the converted model and an fp32 conversion of it this many times "
                         "each on this machine and reports the ratio (0: skip).", lower_bound=0)


def config_from_flags():
    from pocketnet_tf.export.exporter import ExportConfig

    if not FLAGS.model or not FLAGS.out:
        raise ValueError("--model and --out are required")
    return ExportConfig(
        model=FLAGS.model, mode=FLAGS.mode, out=FLAGS.out, representative=FLAGS.representative,
        bin=tuple(FLAGS.bin), validation_data=FLAGS.validation_data, num_calibration=FLAGS.num_calibration,
        num_validation=FLAGS.num_validation, golden_count=FLAGS.golden_count, raw_input=FLAGS.raw_input,
        l2_normalize=FLAGS.l2_normalize, dynamic_batch=FLAGS.dynamic_batch, prelu_rewrite=FLAGS.prelu_rewrite,
        backend=FLAGS.backend, min_cosine=FLAGS.min_cosine, mean_cosine=FLAGS.mean_cosine,
        p01_cosine=FLAGS.p01_cosine, max_abs_error=FLAGS.max_abs_error, max_accuracy_drop=FLAGS.max_accuracy_drop,
        far=FLAGS.far, seed=FLAGS.seed, num_threads=FLAGS.num_threads, latency_runs=FLAGS.latency_runs,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from pocketnet_tf.export.exporter import ExportValidationError, run_export
    from pocketnet_tf.export.validate import markdown_report

    try:
        config = config_from_flags()
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


if __name__ == "__main__":
    define_flags()
    from pocketnet_tf.cli import parse_flags

    app.run(main, flags_parser=parse_flags)
