"""Evaluate a face-embedding model: ``python -m pocketnet_tf.evaluate``.

    python -m pocketnet_tf.evaluate --model=run/model.keras --bin=data/lfw.bin,data/agedb_30.bin \\
        [--ijb=data/IJB_release/IJBC --ijb_set=IJBC] --out=eval_out

The model may be a ``.keras`` file, a SavedModel directory or a ``.tflite`` file. Results go to
``<out>/results.json`` with ROC curves as PNG files; see docs/evaluation.md. Flags with dashes
(``--ijb-set``) are accepted too. A bad input file ends the run with a one-line message and
exit code 1.
"""

from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("model", None, "Model to evaluate: .keras file, SavedModel directory or .tflite file.")
    flags.DEFINE_list("bin", [], "Verification .bin files (insightface format), comma separated.")
    flags.DEFINE_string("ijb", None, "IJB release directory (meta/ and loose_crop/ inside).")
    flags.DEFINE_string("ijb_set", "IJBC", "IJBB or IJBC (selects the meta file prefix).")
    flags.DEFINE_string("out", None, "Output directory (results.json, ROC PNGs).")
    flags.DEFINE_integer("batch_size", 64, "Images per forward pass.", lower_bound=1)
    flags.DEFINE_integer("n_folds", 10, "Cross-validation folds of the .bin protocol.", lower_bound=2)
    flags.DEFINE_boolean("flip", True, "Flip test: add the embedding of the mirrored image.")
    flags.DEFINE_integer("num_threads", 0, "TFLite interpreter threads (0: runtime default).", lower_bound=0)
    flags.DEFINE_integer("workers", 2, "Threads decoding and aligning IJB images.", lower_bound=1)
    flags.DEFINE_boolean("progress", True, "Show progress bars.")
    flags.DEFINE_boolean("plots", True, "Write ROC curves as PNG.")
    flags.DEFINE_string("megaface_algo", "pocketnet", "Suffix of MegaFace feature files (<image>_<algo>.bin).")
    flags.DEFINE_string("megaface_facescrub_images", None, "Root of the aligned FaceScrub probe images.")
    flags.DEFINE_string("megaface_facescrub_list", None, "FaceScrub image list (text or devkit JSON).")
    flags.DEFINE_string("megaface_distractor_images", None, "Root of the aligned MegaFace distractor images.")
    flags.DEFINE_string("megaface_distractor_list", None, "Distractor image list (text or devkit JSON).")
    flags.DEFINE_string("megaface_facescrub_noises", None, "facescrub_noises.txt (enables the refined set).")
    flags.DEFINE_string("megaface_distractor_noises", None, "megaface_noises.txt (enables the refined set).")
    flags.DEFINE_boolean("megaface_resume", False, "Skip images whose MegaFace feature file exists (same model only).")


def _parse(argv):
    try:
        from pocketnet_tf.cli import normalize_dashes

        return FLAGS(normalize_dashes(argv, FLAGS))
    except flags.Error as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        sys.exit(1)


def _config_from_flags():
    from pocketnet_tf.eval.runner import EvalConfig

    return EvalConfig(
        model=FLAGS.model, out=FLAGS.out, bin=tuple(FLAGS.bin), ijb=FLAGS.ijb, ijb_set=FLAGS.ijb_set,
        batch_size=FLAGS.batch_size, n_folds=FLAGS.n_folds, flip=FLAGS.flip,
        num_threads=FLAGS.num_threads or None, workers=FLAGS.workers, progress=FLAGS.progress,
        plots=FLAGS.plots, megaface_algo=FLAGS.megaface_algo,
        megaface_facescrub_images=FLAGS.megaface_facescrub_images,
        megaface_facescrub_list=FLAGS.megaface_facescrub_list,
        megaface_distractor_images=FLAGS.megaface_distractor_images,
        megaface_distractor_list=FLAGS.megaface_distractor_list,
        megaface_facescrub_noises=FLAGS.megaface_facescrub_noises,
        megaface_distractor_noises=FLAGS.megaface_distractor_noises,
        megaface_resume=FLAGS.megaface_resume,
    )


def main(argv):
    if len(argv) > 1:
        print(f"evaluate: error: unexpected arguments {argv[1:]}", file=sys.stderr)
        return 1
    try:
        config = _config_from_flags()
        from pocketnet_tf.eval.runner import run_evaluation

        results = run_evaluation(config)
    except (FileNotFoundError, ValueError) as err:
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the --out directory cannot be written (io_utils.OutputError names it)
        print(f"evaluate: error: {err}", file=sys.stderr)
        return 2
    for name, entry in results["sets"].items():
        if "accuracy" in entry:
            print(f"{name}: accuracy {entry['accuracy']:.5f} +- {entry['accuracy_std']:.5f} "
                  f"({entry['pairs']} pairs), XNorm {entry['xnorm']:.4f}")
        else:
            print(f"{name}: TAR@FAR=1e-4 {entry['tar_at_far']['1e-04']:.4f} ({entry['pairs']} pairs)")
    print(f"wrote {config.out}/results.json")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=_parse)
