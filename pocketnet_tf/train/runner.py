"""The training command as a library call: ``run(TrainConfig) -> results``.

One run (one ``--workdir``) may hold two stages: with ``--train_teacher`` a teacher is trained
first (``<workdir>/teacher``, a SavedModel per epoch plus ``manifest.json``), then the student
distils from it; otherwise there is one stage. Each stage directory holds::

    config.json, flags.txt    the resolved configuration (flags.txt re-runs it via --flagfile), written
                              once the run is accepted; records/attempt-NNN/ keeps every attempt's copy
    train.log                 the log
    tensorboard/              scalars (losses, LR, samples/s, verification accuracy)
    checkpoints/              crash-safe checkpoints (see fitting.checkpoints.ResumableCheckpoint)
    teachers/                 per-epoch SavedModels + manifest.json (with --export_teacher)
    student.keras             the trained backbone (and model.keras for a teacher stage)
    results.json              verification accuracy before and after training, losses, timing and
                              ``status``: running, completed, diverged or failed (strict JSON: NaN -> null)

A non-finite loss or gradient stops the stage (:mod:`pocketnet_tf.fitting.guard`) before anything is
saved; the command exits with status 3. Temporary files of writes killed earlier are removed
when a stage starts (and logged).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
from absl import logging

from pocketnet_tf.train.config import TrainConfig
from pocketnet_tf.eval.callbacks import VerificationCallback
from pocketnet_tf.io_utils import (
    atomic_path, attach_log_file, ensure_dir, remove_stale_temporaries, write_json_atomic,
)
from pocketnet_tf.run_records import write_run_records
from pocketnet_tf.fitting.guard import DivergenceError, DivergenceGuard


# ---------------------------------------------------------------------------------------------
# Environment


def make_strategy(name: str):
    """``default`` (one device), ``mirrored`` (all local devices) or ``multi_worker`` (TF_CONFIG)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; expected default, mirrored or multi_worker")


def is_chief(strategy) -> bool:
    """Only the chief writes files under ``tf.distribute.MultiWorkerMirroredStrategy``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "cluster_spec", None) or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def ensure_synthetic_data(config: TrainConfig) -> Path:
    """Writes the synthetic dataset into ``config.data_location`` if it is not there yet.

    Generated into a temporary directory and renamed, so an interrupted generation never leaves
    a half-written dataset that a later run would accept.
    """
    from pocketnet_tf.data import synthetic

    return synthetic.ensure_dataset(
        config.data_location, identities=config.synth_identities,
        images_per_identity=config.synth_images_per_identity, seed=config.synth_seed,
        size=config.input_size, val_identities=config.synth_val_identities, val_pairs=config.synth_val_pairs,
        nuisance=config.synth_nuisance,
    )


def resolve_eval_bins(config: TrainConfig) -> dict:
    """``{name: path}`` for ``--eval_bins`` (names are looked up as ``<data>/<name>.bin``)."""
    out = {}
    for item in config.eval_bins:
        path = Path(item)
        if path.suffix != ".bin":
            path = config.data_location / f"{item}.bin"
        if not path.is_file():
            raise FileNotFoundError(f"verification set {item!r}: {path} not found")
        out[path.stem] = path
    return out


# ---------------------------------------------------------------------------------------------
# Verification


def replica_batch_warning(config: TrainConfig, replicas: int) -> str | None:
    """A warning when the per-replica batch differs from the recipe's ``--recipe_replica_batch``.

    The original trained on 4 GPUs x 128: BatchNorm normalised over 128 images while the LR was
    set for the global 512. Keeping both on N devices means ``--batch_size=128*N`` (the LR follows
    linearly through ``--lr_reference_batch``); ``--batch_size=512`` on one device instead makes
    BatchNorm see 512 images at the same LR.
    """
    expected = config.recipe_replica_batch
    per_replica = config.batch_size // max(replicas, 1)
    if not expected or per_replica == expected:
        return None
    lr = config.base_lr * config.batch_size / config.lr_reference_batch
    return (f"per-replica batch {per_replica} (--batch_size={config.batch_size} over {replicas} replica(s)) differs "
            f"from the recipe's {expected}: BatchNorm statistics are taken over {per_replica} images instead of "
            f"{expected}, at LR {lr:g}. To keep the original's dynamics on {replicas} device(s) use "
            f"--batch_size={expected * replicas} (the LR then scales to "
            f"{config.base_lr * expected * replicas / config.lr_reference_batch:g} through --lr_reference_batch); "
            "see docs/training.md, 'Devices and batch size'.")


def _summaries(results: dict) -> dict:
    return {name: {"accuracy": r.accuracy, "accuracy_std": r.accuracy_std, "xnorm": r.xnorm, "pairs": r.pairs}
            for name, r in results.items()}


# ---------------------------------------------------------------------------------------------
# One stage


def _remove_stale_temporaries(run_dir: Path) -> None:
    """Removes (and logs) what writes killed in an earlier attempt left in the stage's directories."""
    for directory in (run_dir, run_dir / "checkpoints", run_dir / "teachers"):
        for line in remove_stale_temporaries(directory):
            logging.warning("%s", line)


def _teacher_schedule(config: TrainConfig):
    from pocketnet_tf.train.teacher_schedule import TeacherSchedule

    if config.kd == "none":
        return None
    if config.kd == "single":
        if config.teacher:
            return TeacherSchedule.single(config.teacher, config.epochs)
        return TeacherSchedule.final_from_manifest(config.teacher_manifest, config.epochs)
    if config.teachers:
        return TeacherSchedule.from_paths(config.teachers, config.epochs, config.teacher_schedule_policy)
    return TeacherSchedule.from_manifest(config.teacher_manifest, config.epochs, config.teacher_schedule_policy)


def build_model(config: TrainConfig, num_classes: int, steps_per_epoch: int, resuming_sharded: bool = False):
    """The backbone, margin head, train model and optimiser of ``config`` (call under a strategy scope).

    ``resuming_sharded``: the checkpoint being resumed holds a Partial FC head (keep that head)."""
    from pocketnet_tf import models
    from pocketnet_tf.train.distiller import DistillationModel, MarginModel
    from pocketnet_tf.fitting.torch_sgd import TorchSGD
    from pocketnet_tf.train.head_sharding import build_training_head
    from pocketnet_tf.fitting.precision import optimizer_options, precision_scope
    from pocketnet_tf.train.schedules import EpochStepDecay, scaled_learning_rate

    with precision_scope(config.precision):
        backbone = models.build(config.model, genotype=config.genotype, embedding_size=config.embedding_size,
                                input_size=config.input_size, **config.model_overrides())
        head = build_training_head(config.head, num_classes, scale=config.scale, margin=config.margin,
                                   head_sharding=config.head_sharding, sample_rate=config.head_sample_rate,
                                   seed=config.seed, resuming_sharded=resuming_sharded)
        if config.kd == "none":
            model = MarginModel(backbone, head)
        else:
            model = DistillationModel(backbone, head, teacher=None, kd_weight=config.kd_weight,
                                      kd_loss=config.kd_loss)
    lr = scaled_learning_rate(config.base_lr, config.batch_size, config.lr_reference_batch)
    optimizer = TorchSGD(
        EpochStepDecay(lr, steps_per_epoch, config.lr_milestones, config.lr_gamma),
        momentum=config.momentum, weight_decay=config.weight_decay, clip_norm=config.clip_norm or None,
        **optimizer_options(config.precision),
    )
    model.compile(optimizer=optimizer, jit_compile=bool(config.jit_compile))
    optimizer.build(model.trainable_variables)
    return model


@dataclass
class _Stage:
    """What the steps of :func:`train_stage` hand each other (filled in as the stage proceeds)."""

    config: TrainConfig
    strategy: object
    chief: bool
    started: float
    checkpoint_state: dict | None = None
    bins: dict = field(default_factory=dict)
    source: object = None
    info: object = None
    steps_per_epoch: int = 0
    schedule: object = None
    model: object = None
    initial_step: int = 0
    results: dict = field(default_factory=dict)
    verification: object = None
    callbacks: list = field(default_factory=list)

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    @property
    def checkpoint_dir(self) -> Path:
        return self.config.run_dir / "checkpoints"

    @property
    def results_path(self) -> Path:
        return self.config.run_dir / "results.json"

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    def epoch_dataset(self, epoch: int):
        """Epoch ``epoch``'s batches, in an order that depends on the seed and the epoch only."""
        from pocketnet_tf.data import pipeline

        dataset, _ = pipeline.build_dataset(self.source, batch_size=self.config.batch_size, training=True,
                                            image_size=self.config.input_size,
                                            seed=self.config.seed * 100_003 + epoch)
        return dataset


def train_stage(config: TrainConfig, strategy) -> dict:
    """Trains one stage (see the module doc); returns its results (also in ``results.json``)."""
    stage = _Stage(config, strategy, chief=is_chief(strategy), started=time.time())
    handler = _open_stage_directory(config.run_dir) if stage.chief else None
    try:
        logging.info("stage %s: model %s, kd %s, %d epochs, global batch %d, %d replica(s), precision %s",
                     config.run_dir, config.model, config.kd, config.epochs, config.batch_size,
                     strategy.num_replicas_in_sync, config.precision)
        _check_stage_can_start(stage)
        stage.bins = resolve_eval_bins(config)
        _open_training_data(stage)
        stage.schedule = _teacher_schedule(config)
        _build_stage_model(stage)
        _restore_or_start(stage)
        _start_results(stage)
        stage.callbacks = _stage_callbacks(stage)
        _fit_stage(stage)
        if stage.chief:
            _finish_results(stage)
        return stage.results
    finally:
        if handler is not None:
            logging.get_absl_logger().removeHandler(handler)
            handler.close()


def _open_stage_directory(run_dir: Path):
    """Creates the stage directory (the teacher stage's ``<workdir>/teacher`` is new), starts its
    ``train.log`` and clears an earlier attempt's temporaries; returns the log handler."""
    ensure_dir(run_dir)
    handler = attach_log_file(run_dir / "train.log")
    _remove_stale_temporaries(run_dir)
    return handler


def _check_stage_can_start(stage: _Stage) -> None:
    """Refuses, before any work, checkpoints without ``--resume`` and a batch the replicas cannot
    share; warns when the per-replica batch is not the recipe's."""
    from pocketnet_tf.fitting.checkpoints import read_checkpoint_state

    config, replicas = stage.config, stage.strategy.num_replicas_in_sync
    stage.checkpoint_state = read_checkpoint_state(stage.checkpoint_dir)
    if stage.checkpoint_state is not None and not config.resume:
        raise ValueError(f"{stage.checkpoint_dir}: a previous run left checkpoints "
                         f"(step {stage.checkpoint_state['global_step']}); "
                         "pass --resume to continue it or use a new --workdir")
    if config.batch_size % replicas:
        raise ValueError(f"--batch_size={config.batch_size} is not divisible by the {replicas} replicas")
    warning = replica_batch_warning(config, replicas)
    if warning:
        logging.warning("%s", warning)


def _open_training_data(stage: _Stage) -> None:
    """Opens the training source and fixes the steps per epoch (``--steps_per_epoch`` or full batches)."""
    from pocketnet_tf.data import pipeline

    config = stage.config
    stage.source = pipeline.open_source(config.data_location)
    _, stage.info = pipeline.build_dataset(stage.source, batch_size=config.batch_size, training=True,
                                           image_size=config.input_size, seed=config.seed)
    stage.steps_per_epoch = config.steps_per_epoch or stage.info.steps_per_epoch
    if stage.steps_per_epoch < 1:
        raise ValueError(f"{config.data_location}: {stage.info.num_images} images give no full batch of "
                         f"{config.batch_size}")
    logging.info("data %s: %d images, %d classes, %d steps per epoch", stage.info.location, stage.info.num_images,
                 stage.info.num_classes, stage.steps_per_epoch)


def _build_stage_model(stage: _Stage) -> None:
    """Builds the model under the strategy (keeping a resumed Partial FC head) and checks every
    teacher SavedModel of the schedule against it."""
    from pocketnet_tf.train.head_sharding import describe_head, resumed_head_is_sharded

    config = stage.config
    keras.utils.set_random_seed(config.seed)
    sharded = bool(config.resume) and resumed_head_is_sharded(stage.checkpoint_dir)
    with stage.strategy.scope():
        stage.model = build_model(config, stage.info.num_classes, stage.steps_per_epoch, resuming_sharded=sharded)
    logging.info("margin head: %s", describe_head(stage.model.head))
    if stage.schedule is not None:
        # Fail fast: every SavedModel of the schedule must load and fit the student.
        stage.schedule.validate(stage.model.input_image_shape, stage.model.embedding_size)
        logging.info("teacher schedule validated: %d SavedModel(s) for %d epochs",
                     len(stage.schedule.unique_paths()), stage.schedule.epochs)


def _restore_or_start(stage: _Stage) -> None:
    """Restores the newest intact checkpoint (sets the initial step); the chief then records the
    accepted run's configuration (never earlier)."""
    from pocketnet_tf.fitting.checkpoints import restore_checkpoint

    state, steps_per_epoch = stage.checkpoint_state, stage.steps_per_epoch
    if state is not None:
        stage.initial_step = restore_checkpoint(stage.model, stage.checkpoint_dir, steps_per_epoch, state)
        if stage.initial_step >= stage.total_steps:
            logging.info("resumed from %s at global step %d: training complete", state["weights_path"],
                         stage.initial_step)
        else:
            logging.info("resumed from %s at global step %d (epoch %d, step %d)", state["weights_path"],
                         stage.initial_step, stage.initial_step // steps_per_epoch + 1,
                         stage.initial_step % steps_per_epoch)
    elif stage.config.resume:
        logging.info("--resume: no checkpoint in %s, starting from scratch", stage.checkpoint_dir)
    if stage.chief:
        logging.info("run record: %s", write_run_records(stage.run_dir, stage.config))


def _start_results(stage: _Stage) -> None:
    """The stage's results so far (a resumed run keeps "before" and the history), the accuracy
    before training, written to ``results.json`` by the chief."""
    config = stage.config
    stage.results = _read_json(stage.results_path) if stage.initial_step else {}
    stage.results.update({"status": "running", "model": config.model, "kd": config.kd, "epochs": config.epochs,
                          "steps_per_epoch": stage.steps_per_epoch, "num_classes": stage.info.num_classes,
                          "num_images": stage.info.num_images})
    if stage.bins and stage.chief:
        # The evaluation engineer's callback: decodes the sets once at the model's input size,
        # evaluates every --eval_every_steps and at each epoch end, logs to TensorBoard.
        stage.verification = VerificationCallback(stage.bins, every_n_steps=config.eval_every_steps,
                                                  every_n_epochs=1, batch_size=config.eval_batch_size,
                                                  log_dir=stage.run_dir / "tensorboard")
        stage.verification.set_model(stage.model)
        if "before" not in stage.results:
            stage.results["before"] = _summaries(stage.verification.evaluate())
            logging.info("verification before training: %s", _fmt_acc(stage.results["before"]))
    if stage.chief:
        write_json_atomic(stage.results_path, stage.results)


def _stage_callbacks(stage: _Stage) -> list:
    """The callbacks, in the order that matters: the divergence guard first (a diverged step reaches
    no later callback), the shards gathered on every worker before the chief's checkpoint."""
    from pocketnet_tf.train import callbacks as cb
    from pocketnet_tf.train.head_sharding import GatherHeadShards
    from pocketnet_tf.train.teacher_schedule import TeacherScheduleCallback

    config, model = stage.config, stage.model
    callbacks = [DivergenceGuard()]
    if stage.schedule is not None:
        first_epoch = min(stage.initial_step // stage.steps_per_epoch, config.epochs - 1)
        model.set_teacher(stage.schedule.path_for(first_epoch), retrace=False)
        callbacks.append(TeacherScheduleCallback(stage.schedule, validated=True))
    callbacks.append(GatherHeadShards(config.checkpoint_every_steps))
    if stage.chief:
        if stage.verification is not None:
            callbacks.append(stage.verification)
        if config.export_teacher:
            callbacks.append(cb.TeacherExporter(model.backbone, stage.run_dir / "teachers"))
        callbacks.append(cb.TrainingLogger(config.batch_size, stage.total_steps, config.log_every_steps,
                                           log_dir=stage.run_dir / "tensorboard"))
        callbacks.append(cb.ResumableCheckpoint(stage.checkpoint_dir, stage.steps_per_epoch,
                                                config.checkpoint_every_steps))
    callbacks.append(_LossHistory(stage.results, stage.results_path if stage.chief else None))
    return callbacks


def _fit_stage(stage: _Stage) -> None:
    """Trains from the initial step to the end; a failure is recorded in ``results.json``
    (``diverged`` or ``failed``) and re-raised."""
    from pocketnet_tf.fitting.loop import fit_epochs

    if stage.initial_step < stage.total_steps:
        try:
            fit_epochs(stage.model, stage.epoch_dataset, epochs=stage.config.epochs,
                       steps_per_epoch=stage.steps_per_epoch, initial_step=stage.initial_step,
                       callbacks=stage.callbacks, verbose=stage.config.verbose)
        except Exception as err:  # noqa: BLE001 - recorded, then re-raised
            if stage.chief:
                _record_stop(stage.results_path, stage.results,
                             "diverged" if isinstance(err, DivergenceError) else "failed", err, stage.started)
            raise
    else:
        logging.info("stage already complete (%d steps)", stage.initial_step)
    if stage.info.corrupt.count:
        logging.warning("data: %s", stage.info.corrupt.summary())


def _finish_results(stage: _Stage) -> None:
    """The chief's last word: teacher switches, accuracy after training, ``student.keras``
    (float32 whatever ``--precision``), timing and ``status: completed``."""
    from pocketnet_tf.train.teacher_schedule import TeacherScheduleCallback

    config, results, run_dir = stage.config, stage.results, stage.run_dir
    if stage.schedule is not None:
        switches = [s for cbk in stage.callbacks if isinstance(cbk, TeacherScheduleCallback) for s in cbk.switches]
        results.setdefault("teachers", {})
        for epoch, path, how in switches:
            results["teachers"].setdefault(str(epoch + 1), {}).update(path=path, switch=how)
    if stage.verification is not None:
        results["after"] = _summaries(stage.verification.evaluate())
        results["best"] = {name: {"accuracy": acc, "step": step}
                           for name, (acc, step) in stage.verification.best.items()}
        logging.info("verification after training: %s", _fmt_acc(results["after"]))
    if config.save_student:
        from pocketnet_tf.fitting.precision import float32_copy

        with atomic_path(run_dir / "student.keras") as tmp:
            float32_copy(stage.model.backbone).save(tmp)
        results["student"] = str(run_dir / "student.keras")
    if config.export_teacher:
        results["teacher_manifest"] = str(run_dir / "teachers" / "manifest.json")
    results["corrupt_records"] = stage.info.corrupt.count
    results["seconds"] = round(results.get("seconds", 0.0) + time.time() - stage.started, 1)
    results["status"] = "completed"
    results.pop("error", None)
    write_json_atomic(stage.results_path, results)


def _record_stop(results_path: Path, results: dict, status: str, err: Exception, started: float) -> None:
    """Marks ``results.json`` with how the stage stopped (``diverged``/``failed``) and why."""
    logging.error("%s", err)
    results["status"] = status
    results["error"] = f"{type(err).__name__}: {err}" if status == "failed" else str(err)
    results["seconds"] = round(results.get("seconds", 0.0) + time.time() - started, 1)
    try:
        write_json_atomic(results_path, results)
    except OSError as write_err:  # e.g. the disk that stopped the run is still full
        logging.error("%s", write_err)


class _LossHistory(keras.callbacks.Callback):
    """Puts each epoch's logged values into ``results["history"]`` (1-based epoch keys) and, if
    ``path`` is given, rewrites the results file, so an interrupted run keeps its history."""

    def __init__(self, results: dict, path=None):
        super().__init__()
        self.results = results
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        self.results.setdefault("history", {})[str(epoch + 1)] = {k: float(v) for k, v in (logs or {}).items()}
        teacher = getattr(self.model, "teacher", None)
        if teacher is not None and teacher.path is not None:
            self.results.setdefault("teachers", {}).setdefault(str(epoch + 1), {})["path"] = str(teacher.path)
        if self.path is not None:
            write_json_atomic(self.path, self.results)


def _fmt_acc(results: dict) -> str:
    return ", ".join(f"{k} {v['accuracy']:.4f}" for k, v in results.items())


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# ---------------------------------------------------------------------------------------------
# The command


def run(config: TrainConfig) -> dict:
    """Runs the training command (teacher stage first with ``--train_teacher``); returns results."""
    from pocketnet_tf.train.head_sharding import split_cpu

    split_cpu(config.logical_cpus)
    strategy = make_strategy(config.strategy)
    ensure_dir(config.run_dir)
    if config.synthesize_data:
        if is_chief(strategy):
            ensure_synthetic_data(config)
        elif not (config.data_location / "train.rec").exists():
            raise FileNotFoundError(f"{config.data_location}: synthetic data must be generated by the chief first")
    results = {}
    if config.train_teacher:
        results["teacher"] = train_stage(config.teacher_stage(), strategy)
        config = config.student_stage()
    results["student"] = train_stage(config, strategy)
    if is_chief(strategy) and "teacher" in results:
        write_json_atomic(config.run_dir / "results.json", {**results["student"], "teacher": results["teacher"]})
    return results
