"""TrainConfig: flags -> frozen config, cross-field checks, flagfiles in configs/ (style §2)."""

import dataclasses
from pathlib import Path

import pytest
from absl import flags

from pocketnet_tf.run_config import flag_fields
from pocketnet_tf.train import flags as train_flags
from pocketnet_tf.train.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def parse(args, cwd=REPO):
    """Parses training flags (with flagfiles resolved against ``cwd``) into a fresh FlagValues."""
    import os

    values = flags.FlagValues()
    train_flags.define_flags(values)
    old = os.getcwd()
    os.chdir(cwd)
    try:
        values(["prog", *args])
    finally:
        os.chdir(old)
    return flag_fields(TrainConfig, values)


def test_every_flag_is_a_config_field_and_documented():
    values = flags.FlagValues()
    train_flags.define_flags(values)
    names = set(TrainConfig.field_names())
    defined = {name for name in values if name in names}
    assert defined == names
    assert all(len(values[name].help) > 10 for name in names)


def _placeholders(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}")
    return data, manifest


@pytest.mark.parametrize("flagfile", sorted(p.name for p in (REPO / "configs" / "train").glob("*.flags")
                                            if p.name != "ms1mv2_common.flags"))
def test_shipped_flagfiles_parse_and_pass_the_checks(flagfile, tmp_path):
    data, manifest = _placeholders(tmp_path)
    values = parse([f"--flagfile=configs/train/{flagfile}", f"--data={data}"]
                   + ([f"--teacher_manifest={manifest}"] if "_kd" in flagfile else []))
    config = TrainConfig.from_flags(values)
    assert config.batch_size == 512 and config.epochs == 26 and config.lr_milestones == (8, 14, 20, 25)
    suffix = flagfile.split("_ms1mv2_")[1].removesuffix(".flags")
    assert config.kd == {"arcface": "none", "kd": "single", "multistep_kd": "multistep"}.get(suffix, "none")
    if "teacher" in flagfile:
        assert config.export_teacher and config.model == "iresnet100"


def test_quickstart_flagfile(tmp_path):
    config = TrainConfig.from_flags(parse(["--flagfile=configs/quickstart.flags", f"--workdir={tmp_path}"]))
    assert config.synthesize_data and config.train_teacher and config.kd == "multistep"
    assert config.model == "PocketNetS-128" and config.data_location == tmp_path / "data"
    teacher = config.teacher_stage()
    assert teacher.export_teacher and teacher.kd == "none" and teacher.workdir == str(tmp_path / "teacher")
    assert teacher.model == config.teacher_model and teacher.epochs == config.teacher_epochs
    student = config.student_stage()
    assert student.teacher_manifest == str(tmp_path / "teacher" / "teachers" / "manifest.json")


def test_resolved_flagfile_round_trips(tmp_path):
    data, manifest = _placeholders(tmp_path)
    config = TrainConfig.from_flags(parse([
        "--flagfile=configs/train/pocketnet_s128_ms1mv2_multistep_kd.flags", f"--data={data}",
        f"--teacher_manifest={manifest}", "--epochs=3", "--lr_milestones=2", "--resume",
    ]))
    (tmp_path / "flags.txt").write_text(config.to_flagfile())
    again = TrainConfig.from_flags(parse([f"--flagfile={tmp_path / 'flags.txt'}"]))
    assert again == config
    assert again.epochs == 3 and again.lr_milestones == (2,) and again.resume


def test_flagfile_model_equals_a_direct_build(tmp_path):
    from pocketnet_tf import models

    data, manifest = _placeholders(tmp_path)
    config = TrainConfig.from_flags(parse(["--flagfile=configs/train/pocketnet_m256_ms1mv2_kd.flags",
                                           f"--data={data}", f"--teacher_manifest={manifest}"]))
    from pocketnet_tf.train.runner import build_model

    model = build_model(config, num_classes=10, steps_per_epoch=5)
    assert model.backbone.get_config() == models.build("PocketNetM-256").get_config()
    assert model.head.num_classes == 10 and model.head.scale == 64.0 and model.head.margin == 0.5
    assert model.kd_weight == 100.0 and model.optimizer.clip_norm == 5.0
    assert model.optimizer.coupled_weight_decay == 5e-4 and model.optimizer.momentum == 0.9


BASE = dict(workdir="w", synthesize_data=True)


@pytest.mark.parametrize("changes, error, message", [
    (dict(kd="single"), ValueError, "--kd=single needs a teacher"),
    (dict(teacher_manifest="m.json"), ValueError, "--teacher_manifest is set but --kd=none"),
    (dict(kd="multistep", teacher="t"), ValueError, "--kd=multistep takes --teachers or --teacher_manifest"),
    (dict(kd="single", teachers=("a", "b")), ValueError, "--kd=single takes --teacher or --teacher_manifest"),
    (dict(kd="single", teacher="a", teacher_manifest="m"), ValueError, "give one teacher source"),
    (dict(train_teacher=True, teacher_epochs=3), ValueError, "--train_teacher trains a teacher for distillation"),
    (dict(kd="multistep", train_teacher=True, teacher_epochs=3, epochs=5), ValueError,
     "needs --teacher_epochs >= 5, received 3"),
    (dict(model="iresnet50", channels=8), ValueError, "--channels applies to PocketNet models only"),
    (dict(model="ResNet9000"), ValueError, "unknown model 'ResNet9000'"),
    (dict(genotype="not_a_genotype"), ValueError, "--genotype=not_a_genotype"),
    (dict(synthesize_data=False), ValueError, "--data is required"),
    (dict(synthesize_data=False, data="/nonexistent/faces"), FileNotFoundError, "dataset /nonexistent/faces not found"),
    (dict(kd="single", teacher="/nonexistent/teacher"), FileNotFoundError, "teacher SavedModel /nonexistent/teacher"),
    (dict(kd="multistep", teacher_manifest="/nonexistent/m.json"), FileNotFoundError, "teacher manifest"),
    (dict(lr_milestones=(5, 3)), ValueError, "--lr_milestones must be increasing"),
    (dict(strategy="tpu"), ValueError, "--strategy must be one of"),
])
def test_cross_field_checks(changes, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig.from_flags({**BASE, **changes})


def test_config_is_frozen_and_valid_defaults_pass():
    config = TrainConfig.from_flags(dict(BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3  # type: ignore[misc]
    assert config.to_json()["lr_milestones"] == [8, 14, 20, 25]


def test_genotype_flag_trains_a_searched_cell(tmp_path):
    from pocketnet_tf import genotypes
    from pocketnet_tf.train.runner import build_model

    searched = genotypes.resolve("softmax_cifar10")
    assert searched != genotypes.resolve("softmax_casia")
    genotypes.save(searched, tmp_path / "genotype.json")
    config = TrainConfig.from_flags(parse([
        f"--workdir={tmp_path}", "--synthesize_data", f"--genotype={tmp_path / 'genotype.json'}",
        "--input_size=32", "--channels=2", "--num_cells=3", "--embedding_size=16",
    ]))
    model = build_model(config, num_classes=5, steps_per_epoch=3)
    assert model.backbone.genotype == searched
    assert model.backbone.embedding_size == 16 and model.backbone.input_shape == (None, 32, 32, 3)
