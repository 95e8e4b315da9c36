"""``python -m pocketnet_tf.web_demo serve|build --bundle=DIR [--port=N | --out=DIR]``.

``serve`` serves the browser demo (web_demo/) and the bundle on http://127.0.0.1 with the
cross-origin isolation headers threaded WASM needs; ``build`` writes the same files into a folder
to host anywhere. Run ``npm ci`` in web_demo/ first. Exit status 2 with a one-line message on a
bad bundle or missing files.
"""

from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS


def main(argv):
    from pocketnet_tf.web_demo.command import run
    from pocketnet_tf.web_demo.config import WebDemoConfig

    if len(argv) != 2:
        print("usage: python -m pocketnet_tf.web_demo serve|build --bundle=DIR [--port=N] [--out=DIR]", file=sys.stderr)
        return 2
    try:
        run(WebDemoConfig.from_flags(argv[1], FLAGS))
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.web_demo import flags as web_flags

    web_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(web_flags)  # listed by --help
    app.run(main, flags_parser=parse_flags)
