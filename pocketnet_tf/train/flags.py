"""absl flags of the training stage, defined only by the entry points that run it.

:func:`define_flags` holds ``python -m pocketnet_tf.train``'s flags (names equal the fields of
:class:`pocketnet_tf.train.config.TrainConfig`); :func:`define_benchmark_flags` those of the
``train``, ``head`` and ``kd`` subcommands of ``python -m pocketnet_tf.benchmark`` (the ``input``
subcommand's own flags are the data stage's, :mod:`pocketnet_tf.data.flags`).
"""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the training flags on ``flag_values`` (called only by ``train/__main__``; tests and
    the KD ablation pass a fresh ``FlagValues``)."""
    from pocketnet_tf.cli import require_finite_floats
    from pocketnet_tf.train.config import (
        HEAD_SHARDING, HEADS, KD_LOSSES, KD_MODES, PRECISIONS, SCHEDULE_POLICIES, STRATEGIES, TrainConfig,
    )

    fv = {"flag_values": flag_values}
    # run
    flags.DEFINE_string("workdir", None, "Run directory: logs, TensorBoard, checkpoints, config.json, flags.txt, "
                        "results.json, student.keras (and teacher/ with --train_teacher).", **fv)
    flags.DEFINE_boolean("resume", False, "Continue the run in --workdir from its newest checkpoint (exact global "
                         "step; survives SIGKILL). Without it an existing checkpoint is an error.", **fv)
    flags.DEFINE_integer("checkpoint_every_steps", 0, "Also checkpoint every N global steps (0: only at epoch ends).",
                         lower_bound=0, **fv)
    flags.DEFINE_integer("log_every_steps", 50, "Log losses, LR and samples/s every N global steps.", lower_bound=1,
                         **fv)
    flags.DEFINE_enum("strategy", "default", list(STRATEGIES), "tf.distribute strategy: default (one device), "
                      "mirrored (all local devices), multi_worker (MultiWorkerMirroredStrategy from TF_CONFIG).", **fv)
    flags.DEFINE_integer("seed", 0, "Seed for initialisation and the per-epoch data order.", lower_bound=0, **fv)
    flags.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA (slower on CPU, see "
                         "docs/training.md).", **fv)
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Compute precision (Keras dtype policy): float32, "
                      "mixed_bfloat16 or mixed_float16 (dynamic loss scaling). Variables, checkpoints, "
                      "student.keras, the margin head and the losses stay float32. For GPUs; see docs/training.md "
                      "for CPUs.", **fv)
    flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.",
                         lower_bound=0, upper_bound=2, **fv)
    flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into N logical devices first, so --strategy=mirrored has "
                         "N replicas on a CPU-only machine (0: as the machine is).", lower_bound=0, **fv)
    flags.DEFINE_boolean("save_student", True, "Save the trained backbone as <workdir>/student.keras.", **fv)
    # model
    flags.DEFINE_string("model", "PocketNetS-128", "Backbone registry name: PocketNetS-128, PocketNetS-256, "
                        "PocketNetM-128, PocketNetM-256, MobileFaceNet, iresnet18/34/50/100.", **fv)
    flags.DEFINE_string("genotype", None, "PocketNet only: genotype JSON/text file (e.g. a search run's "
                        "genotype.json) or published name, replacing softmax_casia.", **fv)
    flags.DEFINE_integer("embedding_size", None, "Override the preset's embedding size.", lower_bound=1, **fv)
    flags.DEFINE_integer("input_size", 112, "Square input side in pixels (112 in the paper).", lower_bound=16, **fv)
    flags.DEFINE_integer("channels", None, "PocketNet only: initial cell width C (16 for S, 32 for M).", lower_bound=1,
                         **fv)
    flags.DEFINE_integer("num_cells", None, "PocketNet only: number of cells (18 for S, 9 for M).", lower_bound=3, **fv)
    # head
    flags.DEFINE_enum("head", "arcface", list(HEADS), "Margin head: arcface (s=64, m=0.5) or cosface (s=64, m=0.35).",
                      **fv)
    flags.DEFINE_float("scale", 64.0, "Logit scale s of the margin head.", lower_bound=0.0, **fv)
    flags.DEFINE_float("margin", None, "Margin m (default 0.5 for arcface, 0.35 for cosface).", lower_bound=0.0, **fv)
    flags.DEFINE_enum("head_sharding", "auto", list(HEAD_SHARDING), "auto: Partial FC when more than one replica "
                      "trains (or with --head_sample_rate < 1, or resuming a sharded run): each replica holds "
                      "ceil(classes/replicas) centres and updates them itself; none: every replica holds the whole "
                      "head (gradient all-reduced).", **fv)
    flags.DEFINE_float("head_sample_rate", 1.0, "Partial FC: fraction of each replica's centres scored per step (the "
                       "batch's positives always kept; 0.1-0.3 for millions of classes).", lower_bound=0.0,
                       upper_bound=1.0, **fv)
    # data
    flags.DEFINE_string("data", None, "Training data: a directory with train.rec/train.idx (insightface RecordIO), a "
                        "folder-per-identity tree, or a .tfrecord. Default with --synthesize_data: <workdir>/data.",
                        **fv)
    flags.DEFINE_boolean("synthesize_data", False, "Generate a synthetic dataset (RecordIO + held-out synth_val.bin) "
                         "into --data (or <workdir>/data) if it is not there yet.", **fv)
    flags.DEFINE_integer("synth_identities", 200, "--synthesize_data: training identities.", lower_bound=2, **fv)
    flags.DEFINE_integer("synth_images_per_identity", 20, "--synthesize_data: images per identity.", lower_bound=1,
                         **fv)
    flags.DEFINE_integer("synth_val_identities", 50, "--synthesize_data: held-out identities of synth_val.bin.",
                         lower_bound=2, **fv)
    flags.DEFINE_integer("synth_val_pairs", 600, "--synthesize_data: verification pairs in synth_val.bin.",
                         lower_bound=0, **fv)
    flags.DEFINE_integer("synth_seed", 0, "--synthesize_data: generator seed.", lower_bound=0, **fv)
    flags.DEFINE_float("synth_nuisance", 1.0, "--synthesize_data: nuisance strength (pose in the image plane, "
                       "illumination, occluders, blur, noise): 0 off, 1 the default, 2 twice as strong.",
                       lower_bound=0.0, upper_bound=3.0, **fv)
    flags.DEFINE_list("eval_bins", [], "Verification sets: names looked up as <data>/<name>.bin (lfw, cfp_fp, "
                      "agedb_30, synth_val, ...) or paths to .bin files. Evaluated before training, every "
                      "--eval_every_steps, at each epoch end and after training.", **fv)
    flags.DEFINE_integer("eval_every_steps", 0, "Also verify every N global steps (the original: 5686 = half an "
                         "epoch).", lower_bound=0, **fv)
    flags.DEFINE_integer("eval_batch_size", 64, "Batch size of verification embedding.", lower_bound=1, **fv)
    # optimisation
    flags.DEFINE_integer("epochs", 26, "Training epochs (26 on MS1MV2, 34 on CASIA-WebFace).", lower_bound=1, **fv)
    flags.DEFINE_integer("batch_size", 512, "Global batch size (the original: 4 GPUs x 128).", lower_bound=1, **fv)
    flags.DEFINE_integer("recipe_replica_batch", 0, "Per-replica batch the recipe was tuned for (MS1MV2 flagfiles: "
                         "128, the original's 4 GPUs x 128); a run whose --batch_size / replicas differs logs a "
                         "warning (BatchNorm sees another batch). 0: no assumption.", lower_bound=0, **fv)
    flags.DEFINE_integer("steps_per_epoch", 0, "Steps per epoch (0: images // batch_size).", lower_bound=0, **fv)
    flags.DEFINE_float("base_lr", 0.1, "Learning rate at --lr_reference_batch; the LR used is base_lr * batch_size / "
                       "lr_reference_batch.", lower_bound=0.0, **fv)
    flags.DEFINE_integer("lr_reference_batch", 512, "Batch size at which the LR equals --base_lr.", lower_bound=1, **fv)
    flags.DEFINE_list("lr_milestones", ["8", "14", "20", "25"], "1-based epochs m: the LR is multiplied by "
                      "--lr_gamma from 0-based epoch m-1 on (the original's LambdaLR; webface: 20,28,32).", **fv)
    flags.DEFINE_float("lr_gamma", 0.1, "LR decay factor at each milestone.", lower_bound=0.0, **fv)
    flags.DEFINE_float("momentum", 0.9, "SGD momentum (PyTorch semantics).", lower_bound=0.0, upper_bound=0.999, **fv)
    flags.DEFINE_float("weight_decay", 5e-4, "L2 weight decay added to every gradient before momentum (PyTorch SGD), "
                       "on all parameters incl. BN, PReLU and the head.", lower_bound=0.0, **fv)
    flags.DEFINE_float("clip_norm", 5.0, "Clip the backbone's gradients to this global L2 norm (0: off); the head is "
                       "not clipped.", lower_bound=0.0, **fv)
    # distillation
    flags.DEFINE_enum("kd", "none", list(KD_MODES), "Distillation: none (ArcFace only), single (one teacher), "
                      "multistep (a teacher checkpoint per epoch).", **fv)
    flags.DEFINE_float("kd_weight", 100.0, "w in loss = CE + w * MSE(l2n(student), l2n(teacher)).", lower_bound=0.0,
                       **fv)
    flags.DEFINE_enum("kd_loss", "mse", list(KD_LOSSES), "KD term: mse (the original: MSE of the L2-normalised "
                      "embeddings, mean over batch x dims) or cosine (mean 1 - cos(student, teacher)).", **fv)
    flags.DEFINE_string("teacher", None, "--kd=single: teacher SavedModel directory.", **fv)
    flags.DEFINE_list("teachers", [], "--kd=multistep: teacher SavedModels, earliest first (student epoch e uses the "
                      "(e+1)-th with --teacher_schedule_policy=per_epoch).", **fv)
    flags.DEFINE_string("teacher_manifest", None, "Teacher run manifest.json (from --export_teacher): --kd=multistep "
                        "uses a checkpoint per epoch, --kd=single the last one.", **fv)
    flags.DEFINE_enum("teacher_schedule_policy", "per_epoch", list(SCHEDULE_POLICIES), "per_epoch: student epoch e "
                      "learns from teacher epoch e+1 (the original); spread: T teacher epochs stretched over the "
                      "student's.", **fv)
    # teacher training
    flags.DEFINE_boolean("export_teacher", False, "Export the backbone as a SavedModel at every epoch end plus "
                         "teachers/manifest.json (i.e. this run trains a teacher).", **fv)
    flags.DEFINE_boolean("train_teacher", False, "First train a teacher (--teacher_* flags, same data and "
                         "optimisation) into <workdir>/teacher, then distil the student from its manifest.", **fv)
    flags.DEFINE_string("teacher_model", "iresnet100", "--train_teacher: teacher registry name.", **fv)
    flags.DEFINE_integer("teacher_epochs", 0, "--train_teacher: teacher epochs.", lower_bound=0, **fv)
    flags.DEFINE_integer("teacher_embedding_size", None, "--train_teacher: teacher embedding size (default: the "
                         "student's).", lower_bound=1, **fv)
    flags.DEFINE_integer("teacher_channels", None, "--train_teacher with a PocketNet teacher: its width C.",
                         lower_bound=1, **fv)
    flags.DEFINE_integer("teacher_num_cells", None, "--train_teacher with a PocketNet teacher: its cells.",
                         lower_bound=3, **fv)
    flags.DEFINE_integer("teacher_input_size", None, "--train_teacher: must equal --input_size (kept for clarity).",
                         lower_bound=16, **fv)
    require_finite_floats(flag_values, TrainConfig.field_names())


def define_benchmark_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the flags of ``python -m pocketnet_tf.benchmark`` that the training stage owns: those
    its ``train``, ``head`` and ``kd`` subcommands read, including the timing flags every subcommand
    shares (``--batch_size``, ``--steps``, ``--warmup``, ``--json``). Called only by
    ``pocketnet_tf/benchmark.py``'s entry, next to :func:`pocketnet_tf.data.flags.define_benchmark_flags`."""
    from pocketnet_tf.train.precision import PRECISIONS

    fv = {"flag_values": flag_values}
    # every subcommand
    flags.DEFINE_integer("batch_size", 64, "Batch size of the timed train steps.", lower_bound=1, **fv)
    flags.DEFINE_integer("steps", 20, "Timed steps (after warm-up).", lower_bound=1, **fv)
    flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing, allocation).", lower_bound=1, **fv)
    flags.DEFINE_boolean("json", False, "Print the result as one JSON object.", **fv)
    # benchmark train
    flags.DEFINE_string("model", "PocketNetS-128", "Backbone registry name.", **fv)
    flags.DEFINE_integer("input_size", 112, "Square input side.", lower_bound=16, **fv)
    flags.DEFINE_integer("num_classes", 1000, "Classes of the ArcFace head.", lower_bound=2, **fv)
    flags.DEFINE_boolean("jit", False, "Compile the train step with XLA.", **fv)
    flags.DEFINE_boolean("kd", False, "Include a teacher forward and the KD term (the distillation train_step).",
                         **fv)
    flags.DEFINE_string("teacher", None, "--kd: teacher backbone registry name (default: a copy of --model; the "
                        "paper's teacher is iresnet100).", **fv)
    flags.DEFINE_enum("precision", "float32", list(PRECISIONS), "Compute precision of the timed model (as train "
                      "--precision).", **fv)
    # benchmark kd (its --flagfile is the training flagfile, renamed to --kd_flagfile before parsing)
    flags.DEFINE_string("kd_flagfile", None, "kd: the training flagfile (given as --flagfile=F) with --train_teacher "
                        "and its --teacher_* flags; every arm distils from that one teacher run.", **fv)
    flags.DEFINE_integer("seeds", 5, "kd: seeds per arm (seed s = same initialisation and data order in every arm).",
                         lower_bound=2, **fv)
    flags.DEFINE_string("out", None, "kd: output directory (runs, logs, ablation.json/.md/.png); reused to continue.",
                        **fv)
    flags.DEFINE_list("arms", ["none", "single", "multistep"], "kd: arms, a KD mode plus optional +flag=value "
                      "training flags, e.g. none,single,multistep,multistep+kd_loss=cosine,multistep+kd_weight=10.",
                      **fv)
    flags.DEFINE_string("verification_set", None, "kd: the --eval_bins name compared (default: the first).", **fv)
    # benchmark head (Partial FC)
    flags.DEFINE_integer("embedding_size", 128, "head: embedding size D.", lower_bound=1, **fv)
    flags.DEFINE_integer("replicas", 1, "head: replicas, one logical CPU device each.", lower_bound=1, **fv)
    flags.DEFINE_float("sample_rate", 1.0, "head: Partial FC sample rate (0, 1].", lower_bound=0.0, upper_bound=1.0,
                       **fv)
    flags.DEFINE_enum("head_sharding", "auto", ["auto", "none"], "head: auto (Partial FC on >1 replica or with "
                      "sampling) or none (replicated head).", **fv)
