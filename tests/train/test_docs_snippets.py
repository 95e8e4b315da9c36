"""The two usage snippets of docs/training.md (copied into the README), at test scale."""

import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tests.factory import labelled_images

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def test_snippet_imports_resolve():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2
    imports = [line for block in blocks for line in block.splitlines() if line.startswith(("from ", "import "))]
    assert any("MarginModel" in line for line in imports) and any("TeacherScheduleCallback" in line for line in imports)
    namespace = {}
    for line in imports:
        exec(line, namespace)  # noqa: S102 - our own documentation's import lines
    assert callable(namespace["TeacherSchedule"].from_paths)


@pytest.mark.slow
def test_snippets_run_at_small_scale(tmp_path):
    from pocketnet_tf import models
    from pocketnet_tf.layers.margin import ArcMarginHead
    from pocketnet_tf.train import (
        DistillationModel, EpochStepDecay, MarginModel, TeacherSchedule, TeacherScheduleCallback, TorchSGD,
        export_savedmodel, scaled_learning_rate,
    )

    x, y = labelled_images(8, size=32, classes=4)
    my_dataset = tf.data.Dataset.from_tensor_slices((x, y))
    dataset = my_dataset.batch(4, drop_remainder=True)
    steps_per_epoch = 2
    small = dict(input_size=32, channels=2, num_cells=3)

    # Snippet 1: PocketNetS-128 + ArcFace with plain model.fit on a user's tf.data pipeline.
    backbone = models.build("PocketNetS-128", **small)
    model = MarginModel(backbone, ArcMarginHead(num_classes=4))
    model.compile(optimizer=TorchSGD(EpochStepDecay(scaled_learning_rate(0.1, 4), steps_per_epoch, milestones=[2]),
                                     momentum=0.9, weight_decay=5e-4, clip_norm=5.0))
    history = model.fit(dataset, epochs=2, steps_per_epoch=steps_per_epoch, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    backbone.save(tmp_path / "pocketnet_s128.keras")

    # Snippet 2: distillation from the user's own list of teacher SavedModels, one per epoch.
    teachers = []
    for e in (1, 2):
        teacher_net = models.build("PocketNetS-128", input_size=32, channels=4, num_cells=3)
        teachers.append(str(export_savedmodel(teacher_net, tmp_path / f"teachers/epoch_{e:03d}")))
    schedule = TeacherSchedule.from_paths(teachers, epochs=2)
    schedule.validate(input_shape=(32, 32, 3), embedding_size=128)
    model = DistillationModel(backbone, ArcMarginHead(4), teacher=teachers[0], kd_weight=100.0)
    model.compile(optimizer=TorchSGD(0.1, clip_norm=5.0))
    callback = TeacherScheduleCallback(schedule, validated=True)
    history = model.fit(dataset, epochs=2, steps_per_epoch=steps_per_epoch, callbacks=[callback], verbose=0)
    assert [how for _, _, how in callback.switches] == ["kept", "assigned"]
    assert all(v > 0 for v in history.history["kd_loss"])
