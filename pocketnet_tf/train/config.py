"""``TrainConfig``: everything one training run needs. Field names equal the flag names of
``python -m pocketnet_tf.train`` (:mod:`pocketnet_tf.train.flags`).

``from_flags`` builds a config from parsed absl flag values and runs every cross-field check
before any work starts; ``to_flagfile`` writes the resolved values back in flagfile form so
``--flagfile=<run_dir>/flags.txt`` re-runs a run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pocketnet_tf.run_config import RunConfig, as_list
from pocketnet_tf.train.precision import PRECISIONS

KD_MODES = ("none", "single", "multistep")
KD_LOSSES = ("mse", "cosine")
STRATEGIES = ("default", "mirrored", "multi_worker")
HEADS = ("arcface", "cosface")
SCHEDULE_POLICIES = ("per_epoch", "spread")
HEAD_SHARDING = ("auto", "none")


@dataclasses.dataclass(frozen=True)
class TrainConfig(RunConfig):
    """Everything one training run needs (spec §6). See ``--helpfull`` for each field's meaning."""

    workdir: str
    # model
    model: str = "PocketNetS-128"
    genotype: str | None = None
    embedding_size: int | None = None
    input_size: int = 112
    channels: int | None = None
    num_cells: int | None = None
    # margin head
    head: str = "arcface"
    scale: float = 64.0
    margin: float | None = None
    head_sharding: str = "auto"
    head_sample_rate: float = 1.0
    # data
    data: str | None = None
    synthesize_data: bool = False
    synth_identities: int = 200
    synth_images_per_identity: int = 20
    synth_val_identities: int = 50
    synth_val_pairs: int = 600
    synth_seed: int = 0
    synth_nuisance: float = 1.0
    eval_bins: tuple = ()
    eval_every_steps: int = 0
    eval_batch_size: int = 64
    # optimisation
    epochs: int = 26
    batch_size: int = 512
    recipe_replica_batch: int = 0
    steps_per_epoch: int = 0
    base_lr: float = 0.1
    lr_reference_batch: int = 512
    lr_milestones: tuple = (8, 14, 20, 25)
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_norm: float = 5.0
    # distillation
    kd: str = "none"
    kd_weight: float = 100.0
    kd_loss: str = "mse"
    teacher: str | None = None
    teachers: tuple = ()
    teacher_manifest: str | None = None
    teacher_schedule_policy: str = "per_epoch"
    # teacher training
    export_teacher: bool = False
    train_teacher: bool = False
    teacher_model: str = "iresnet100"
    teacher_epochs: int = 0
    teacher_embedding_size: int | None = None
    teacher_channels: int | None = None
    teacher_num_cells: int | None = None
    teacher_input_size: int | None = None
    # run
    resume: bool = False
    checkpoint_every_steps: int = 0
    log_every_steps: int = 50
    strategy: str = "default"
    seed: int = 0
    jit_compile: bool = False
    precision: str = "float32"
    verbose: int = 1
    save_student: bool = True
    logical_cpus: int = 0

    # -- construction -----------------------------------------------------------------------------

    _name = "train config"
    _empty_means_none = ("genotype", "data", "teacher", "teacher_manifest")

    @classmethod
    def _normalize(cls, kwargs: dict) -> dict:
        for key in ("eval_bins", "teachers"):
            if key in kwargs:
                kwargs[key] = as_list(kwargs[key])
        if "lr_milestones" in kwargs:
            kwargs["lr_milestones"] = tuple(int(v) for v in as_list(kwargs["lr_milestones"]))
        return kwargs

    def check(self) -> None:
        """Cross-field checks; raises ``ValueError``/``FileNotFoundError`` naming the problem."""
        from pocketnet_tf.models import registry

        fail = self.fail
        if not self.workdir:
            fail("--workdir is required")
        preset = registry.get_preset(self.model)  # unknown model -> ValueError listing the names
        if preset.family != "pocketnet":
            for key in ("genotype", "channels", "num_cells"):
                if getattr(self, key) is not None:
                    fail(f"--{key} applies to PocketNet models only, not {self.model}")
        if self.genotype is not None:
            from pocketnet_tf import genotypes

            try:
                genotypes.resolve(self.genotype)  # a file path, published name or genotype text
            except FileNotFoundError:
                raise
            except ValueError as err:
                fail(f"--genotype={self.genotype}: {err}")
        self.check_ranges(
            choices=(("head", HEADS), ("kd", KD_MODES), ("kd_loss", KD_LOSSES), ("strategy", STRATEGIES),
                     ("teacher_schedule_policy", SCHEDULE_POLICIES), ("precision", PRECISIONS)),
            at_least=(("epochs", 1), ("batch_size", 1), ("input_size", 16), ("lr_reference_batch", 1),
                      ("synth_identities", 2), ("synth_images_per_identity", 1), ("eval_batch_size", 1)),
            non_negative=("steps_per_epoch", "checkpoint_every_steps", "eval_every_steps", "log_every_steps",
                          "weight_decay", "clip_norm", "kd_weight", "base_lr", "teacher_epochs",
                          "recipe_replica_batch"),
            unit_interval=("momentum",),
        )
        if self.head_sharding not in HEAD_SHARDING or not 0.0 < self.head_sample_rate <= 1.0:
            fail(f"--head_sharding must be one of {list(HEAD_SHARDING)} and --head_sample_rate in (0, 1], received "
                 f"{self.head_sharding!r} and {self.head_sample_rate}")
        if self.head_sharding == "none" and self.head_sample_rate < 1.0:
            fail(f"--head_sample_rate={self.head_sample_rate} samples the Partial FC head: use --head_sharding=auto")
        if self.logical_cpus < 0:
            fail(f"--logical_cpus must be >= 0, received {self.logical_cpus}")
        if list(self.lr_milestones) != sorted(set(self.lr_milestones)) or any(m < 1 for m in self.lr_milestones):
            fail(f"--lr_milestones must be increasing epochs >= 1, received {list(self.lr_milestones)}")

        # Distillation: exactly one source of teachers, matching the mode.
        sources = [k for k in ("teacher", "teachers", "teacher_manifest") if getattr(self, k)]
        if self.train_teacher:
            if self.kd == "none":
                fail("--train_teacher trains a teacher for distillation: set --kd=single or --kd=multistep")
            if sources:
                fail(f"--train_teacher makes its own teachers; do not also pass --{sources[0]}")
            if self.teacher_epochs < 1:
                fail("--train_teacher needs --teacher_epochs >= 1")
            teacher_preset = registry.get_preset(self.teacher_model)
            if teacher_preset.family != "pocketnet" and (self.teacher_channels or self.teacher_num_cells):
                fail(f"--teacher_channels/--teacher_num_cells apply to PocketNet teachers only, not {self.teacher_model}")
            if self.kd == "multistep" and self.teacher_schedule_policy == "per_epoch" and self.teacher_epochs < self.epochs:
                fail(f"multi-step KD over {self.epochs} epochs with policy per_epoch needs --teacher_epochs >= "
                     f"{self.epochs}, received {self.teacher_epochs} (or use --teacher_schedule_policy=spread)")
            if self.teacher_input_size not in (None, self.input_size):
                fail(f"--teacher_input_size={self.teacher_input_size} must equal the student's --input_size={self.input_size}")
        elif self.kd == "none":
            if sources:
                fail(f"--{sources[0]} is set but --kd=none; set --kd=single or --kd=multistep")
        else:
            if not sources:
                fail(f"--kd={self.kd} needs a teacher: --teacher (single), --teachers or --teacher_manifest, "
                     "or --train_teacher")
            if len(sources) > 1:
                fail(f"give one teacher source, received {', '.join('--' + s for s in sources)}")
            if self.kd == "single" and self.teachers:
                fail("--kd=single takes --teacher or --teacher_manifest (its last checkpoint), not --teachers")
            if self.kd == "multistep" and self.teacher:
                fail("--kd=multistep takes --teachers or --teacher_manifest, not a single --teacher")
            for p in ([self.teacher] if self.teacher else []) + list(self.teachers):
                if not Path(p).exists():
                    raise FileNotFoundError(f"train config: teacher SavedModel {p} not found")
            if self.teacher_manifest and not Path(self.teacher_manifest).is_file():
                raise FileNotFoundError(f"train config: teacher manifest {self.teacher_manifest} not found")
        self.check_data()

    # -- derived values -----------------------------------------------------------------------------

    def model_overrides(self) -> dict:
        out = {}
        if self.channels is not None:
            out["channels"] = self.channels
        if self.num_cells is not None:
            out["num_cells"] = self.num_cells
        return out

    def teacher_stage(self) -> "TrainConfig":
        """The config of the teacher run that ``--train_teacher`` performs first (same data,
        optimisation and schedule; ``workdir/teacher``; exports a SavedModel per epoch)."""
        if not self.train_teacher:
            raise ValueError("teacher_stage() needs --train_teacher")
        return dataclasses.replace(
            self,
            workdir=str(self.run_dir / "teacher"),
            model=self.teacher_model,
            genotype=None,
            embedding_size=self.teacher_embedding_size or self.embedding_size,
            channels=self.teacher_channels,
            num_cells=self.teacher_num_cells,
            data=str(self.data_location),
            synthesize_data=False,
            epochs=self.teacher_epochs,
            kd="none",
            export_teacher=True,
            train_teacher=False,
            teacher_epochs=0,
            teacher_embedding_size=None,
            teacher_channels=None,
            teacher_num_cells=None,
            save_student=False,
        )

    def student_stage(self) -> "TrainConfig":
        """After ``--train_teacher``: this config reading the teacher run's manifest."""
        if not self.train_teacher:
            return self
        return dataclasses.replace(
            self,
            data=str(self.data_location),
            synthesize_data=False,
            train_teacher=False,
            teacher_manifest=str(self.run_dir / "teacher" / "teachers" / "manifest.json"),
        )
