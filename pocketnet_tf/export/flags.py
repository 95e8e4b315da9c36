"""absl flags of the export stage, defined only by the entry points that run it:
:func:`define_flags` for ``python -m pocketnet_tf.convert`` (names equal the fields of
:class:`pocketnet_tf.export.config.ExportConfig`) and :func:`define_verify_flags` for
``python -m pocketnet_tf.verify_bundle`` (:class:`pocketnet_tf.export.config.VerifyConfig`)."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the conversion flags on ``flag_values`` (called only by ``pocketnet_tf/convert.py``)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("model", None, "Keras .keras file or SavedModel directory.", **fv)
    flags.DEFINE_enum("mode", "fp32", ["fp32", "fp16", "dynamic", "int8", "int16x8"], "Conversion mode.", **fv)
    flags.DEFINE_string("out", None, "Output directory of the bundle.", **fv)
    flags.DEFINE_string("representative", None, "Calibration images: a dataset (RecordIO dir with train.rec/.idx, "
                        ".rec, folder tree, .tfrecord) or a verification .bin. Also the default source of held-out "
                        "images.", **fv)
    flags.DEFINE_list("bin", [], "Verification .bin sets: accuracy of Keras vs TFLite; the first calibrates the "
                      "threshold.", **fv)
    flags.DEFINE_string("validation_data", None, "Held-out images for the embedding comparison (default: "
                        "--representative images not used for calibration, else the first --bin).", **fv)
    flags.DEFINE_integer("num_calibration", 200, "Calibration images (int8, int16x8).", lower_bound=1, **fv)
    flags.DEFINE_integer("num_validation", 100, "Held-out images compared with Keras.", lower_bound=1, **fv)
    flags.DEFINE_integer("golden_count", 4, "Golden test vectors in the bundle.", lower_bound=1, **fv)
    flags.DEFINE_boolean("raw_input", False, "Fold the pixel normalisation into the model (app feeds RGB 0..255).",
                         **fv)
    flags.DEFINE_boolean("l2_normalize", False, "Append L2 normalisation of the embedding.", **fv)
    flags.DEFINE_boolean("dynamic_batch", False, "Dynamic batch dimension (default: static batch 1).", **fv)
    flags.DEFINE_enum("prelu_rewrite", "auto", ["auto", "none", "decompose", "fold"], "PReLU rewrite of the export "
                      "graph (auto: fold for int8/int16x8, none otherwise).", **fv)
    flags.DEFINE_enum("backend", None, ["converter", "litert_quantizer"], "Quantisation tool (default per mode).",
                      **fv)
    flags.DEFINE_float("min_cosine", None, "Override: minimum per-image cosine to Keras.", **fv)
    flags.DEFINE_float("mean_cosine", None, "Override: minimum mean cosine to Keras.", **fv)
    flags.DEFINE_float("p01_cosine", None, "Override: minimum 1st-percentile cosine to Keras.", **fv)
    flags.DEFINE_float("max_abs_error", None, "Override: maximum absolute embedding difference.", **fv)
    flags.DEFINE_float("max_accuracy_drop", None, "Override: maximum verification accuracy drop (points).", **fv)
    flags.DEFINE_float("far", 1e-3, "False accept rate at which the decision threshold is calibrated.", **fv)
    flags.DEFINE_integer("seed", 0, "Seed of the calibration / held-out image draw.", lower_bound=0, **fv)
    flags.DEFINE_integer("num_threads", 1, "LiteRT threads for validation.", lower_bound=1, **fv)
    flags.DEFINE_integer("latency_runs", 20, "Times the converted model and an fp32 conversion of it this many times "
                         "each on this machine and reports the ratio (0: skip).", lower_bound=0, **fv)


def define_verify_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the bundle check's flags on ``flag_values`` (called only by ``pocketnet_tf/verify_bundle.py``)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_integer("num_threads", 1, "LiteRT threads.", lower_bound=1, **fv)
    flags.DEFINE_boolean("json", False, "Print the result as JSON.", **fv)
