"""``python -m pocketnet_tf.train --flagfile=configs/train/<name>.flags [--workdir=DIR] [--resume]``.

Trains a PocketNet (or any registered backbone) with ArcFace/CosFace, optionally distilled from
one teacher SavedModel or a per-epoch schedule of them; ``--train_teacher`` trains the teacher
first. See docs/training.md and ``--helpfull``. Exit status 2 with a one-line message on a bad
configuration, a missing or unusable teacher, or bad data.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from pocketnet_tf import flags as pn_flags  # noqa: E402

pn_flags.define_train_flags()
flags.adopt_module_key_flags(pn_flags)
flags.mark_flag_as_required("workdir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    from pocketnet_tf.config import TrainConfig
    from pocketnet_tf.train import runner
    from pocketnet_tf.train.teachers import TeacherError

    try:
        config = TrainConfig.from_flags(pn_flags.train_flag_values())
        results = runner.run(config)
    except (ValueError, FileNotFoundError, TeacherError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    student = results["student"]
    summary = {k: student.get(k) for k in ("before", "after", "student", "teacher_manifest", "seconds") if k in student}
    if "teacher" in results:
        summary["teacher"] = {k: results["teacher"].get(k) for k in ("after", "teacher_manifest", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    app.run(main)
