"""``python -m pocketnet_tf.face [align|enrol|match] --flags`` (also ``python -m pocketnet_tf.align``).

Thin: flags -> :class:`pocketnet_tf.face.config.FaceConfig` -> :func:`pocketnet_tf.face.commands.run`.
See :mod:`pocketnet_tf.face.commands` for what each command writes and prints.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from pocketnet_tf import cli  # noqa: E402
from pocketnet_tf.face.config import COMMANDS, FaceConfig  # noqa: E402

FLAGS = flags.FLAGS


def main(argv) -> int:
    from pocketnet_tf.face import commands

    command = argv[1] if len(argv) > 1 else "align"
    if command not in COMMANDS or len(argv) > 2:
        raise app.UsageError(f"usage: python -m pocketnet_tf.align [{'|'.join(COMMANDS)}] --flags (got {argv[1:]})")
    try:
        config = FaceConfig.from_flags(command, FLAGS)
    except ValueError as err:
        raise app.UsageError(str(err)) from None
    return commands.run(config)


def run() -> None:
    """Defines the flags and runs the command (the entry of both module names)."""
    from pocketnet_tf.face import flags as face_flags

    face_flags.define_flags(FLAGS)
    # Listed by --help, which shows the key flags of sys.argv[0]: this module or align.py, so
    # registered for the running file rather than adopted by this module (adopt_module_key_flags).
    for flag in FLAGS.get_key_flags_for_module(face_flags.__name__):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main, flags_parser=cli.parse_flags)


if __name__ == "__main__":
    run()
