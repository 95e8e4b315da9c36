"""absl flags of ``python -m pocketnet_tf.evaluate``, defined only by that entry point. Names equal
the fields of :class:`pocketnet_tf.eval.config.EvalConfig`."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the evaluation flags on ``flag_values`` (called only by ``pocketnet_tf/evaluate.py``)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("model", None, "Model to evaluate: .keras file, SavedModel directory or .tflite file.", **fv)
    flags.DEFINE_list("bin", [], "Verification .bin files (insightface format), comma separated.", **fv)
    flags.DEFINE_string("ijb", None, "IJB release directory (meta/ and loose_crop/ inside).", **fv)
    flags.DEFINE_string("ijb_set", "IJBC", "IJBB or IJBC (selects the meta file prefix).", **fv)
    flags.DEFINE_string("out", None, "Output directory (results.json, ROC PNGs).", **fv)
    flags.DEFINE_integer("batch_size", 64, "Images per forward pass.", lower_bound=1, **fv)
    flags.DEFINE_integer("n_folds", 10, "Cross-validation folds of the .bin protocol.", lower_bound=2, **fv)
    flags.DEFINE_boolean("flip", True, "Flip test: add the embedding of the mirrored image.", **fv)
    flags.DEFINE_integer("num_threads", 0, "TFLite interpreter threads (0: runtime default).", lower_bound=0, **fv)
    flags.DEFINE_integer("workers", 2, "Threads decoding and aligning IJB images.", lower_bound=1, **fv)
    flags.DEFINE_boolean("progress", True, "Show progress bars.", **fv)
    flags.DEFINE_boolean("plots", True, "Write ROC curves as PNG.", **fv)
    flags.DEFINE_string("megaface_algo", "pocketnet", "Suffix of MegaFace feature files (<image>_<algo>.bin).", **fv)
    flags.DEFINE_string("megaface_facescrub_images", None, "Root of the aligned FaceScrub probe images.", **fv)
    flags.DEFINE_string("megaface_facescrub_list", None, "FaceScrub image list (text or devkit JSON).", **fv)
    flags.DEFINE_string("megaface_distractor_images", None, "Root of the aligned MegaFace distractor images.", **fv)
    flags.DEFINE_string("megaface_distractor_list", None, "Distractor image list (text or devkit JSON).", **fv)
    flags.DEFINE_string("megaface_facescrub_noises", None, "facescrub_noises.txt (enables the refined set).", **fv)
    flags.DEFINE_string("megaface_distractor_noises", None, "megaface_noises.txt (enables the refined set).", **fv)
    flags.DEFINE_boolean("megaface_resume", False, "Skip images whose MegaFace feature file exists (same model "
                         "only).", **fv)
