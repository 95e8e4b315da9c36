"""``python -m pocketnet_tf.train --flagfile=configs/train/<name>.flags [--workdir=DIR] [--resume]``.

Trains a PocketNet (or any registered backbone) with ArcFace/CosFace, optionally distilled from
one teacher SavedModel or a per-epoch schedule of them; ``--train_teacher`` trains the teacher
first. See docs/training.md and ``--helpfull``. Exit status 2 with a one-line message on a bad
configuration, a missing or unusable teacher, or bad data.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS


def _summary(results: dict) -> dict:
    student = results["student"]
    summary = {k: student.get(k) for k in ("before", "after", "student", "teacher_manifest", "seconds") if k in student}
    if "teacher" in results:
        summary["teacher"] = {k: results["teacher"].get(k) for k in ("after", "teacher_manifest", "seconds")}
    return summary


def main(argv):
    from pocketnet_tf.run_config import run_command
    from pocketnet_tf.train import runner
    from pocketnet_tf.train.config import TrainConfig
    from pocketnet_tf.train.teachers import TeacherError

    return run_command(argv, lambda: TrainConfig.from_flags(FLAGS), runner.run, (TeacherError,), _summary)


if __name__ == "__main__":
    from pocketnet_tf.cli import parse_flags
    from pocketnet_tf.train import flags as train_flags

    train_flags.define_flags(FLAGS)
    flags.adopt_module_key_flags(train_flags)
    flags.mark_flag_as_required("workdir")
    app.run(main, flags_parser=parse_flags)
