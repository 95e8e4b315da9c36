"""absl flags of ``python -m pocketnet_tf.search``, defined only by its ``__main__``.

Flag names equal the fields of :class:`pocketnet_tf.search.config.SearchConfig`. The numbers
(network, data, optimisers, epochs) default to the paper's search settings (spec §2.1); three
algorithm defaults are textbook DARTS, not the original code's, each restored by one flag:
``--alpha_grad_includes_train_loss`` (the original's alpha-step order), ``--rank_edges_by=alpha``
(edges ranked by raw alpha) and ``--select_genotype=best`` (the best validation epoch's genotype).
"""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the search flags on ``flag_values`` (called only by ``search/__main__``; tests pass
    a fresh ``FlagValues``)."""
    from pocketnet_tf.allocator import ALLOCATORS
    from pocketnet_tf.cli import require_finite_floats
    from pocketnet_tf.search.config import EDGE_EXECUTION, RANK_EDGES_BY, SELECT_GENOTYPE, STRATEGIES, SearchConfig
    from pocketnet_tf.fitting.precision import PRECISIONS

    fv = {"flag_values": flag_values}

    # run
    flags.DEFINE_string("workdir", None, "Run directory: search.log, checkpoints/, history.json, pictures, "
                        "genotype.json, genotype.txt, results.json, config.json, flags.txt (and data/ with "
                        "--synthesize_data).", **fv)
    flags.DEFINE_boolean("resume", False, "Continue the search in --workdir from its newest checkpoint. Without it "
                         "an existing checkpoint is an error.", **fv)
    flags.DEFINE_enum("strategy", "default", enum_values=list(STRATEGIES), help="tf.distribute strategy: default "
                      "(one device) or mirrored (all local devices; the global batch is split across them).", **fv)
    flags.DEFINE_integer("seed", 2, "Seed of the initialisation, the 50/50 split and the data order (2 in the "
                         "original).", lower_bound=0, **fv)
    flags.DEFINE_integer("verbose", 1, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.",
                         lower_bound=0, upper_bound=2, **fv)
    flags.DEFINE_integer("checkpoint_every_steps", 0, "Also checkpoint every N steps (0: at epoch ends only).",
                         lower_bound=0, **fv)
    flags.DEFINE_boolean("draw_every_epoch", True, "Redraw the cell graphs and alpha heat-maps after every epoch.",
                         **fv)
    flags.DEFINE_enum("precision", "float32", enum_values=list(PRECISIONS), help="Compute precision (Keras dtype "
                      "policy) of the search network: float32, or mixed_bfloat16 with --nosecond_order "
                      "(mixed_float16 is rejected: the alpha gradient is not loss-scaled). Variables and the losses "
                      "stay float32.", **fv)
    # data
    flags.DEFINE_string("data", None, "Dataset: a directory with train.rec/train.idx (insightface RecordIO, e.g. "
                        "CASIA-WebFace), a folder-per-identity tree, or a .tfrecord. Default with --synthesize_data: "
                        "<workdir>/data.", **fv)
    flags.DEFINE_boolean("synthesize_data", False, "Generate a synthetic identity dataset (RecordIO) into --data (or "
                         "<workdir>/data) if it is not there yet.", **fv)
    flags.DEFINE_integer("synth_identities", 40, "--synthesize_data: identities.", lower_bound=2, **fv)
    flags.DEFINE_integer("synth_images_per_identity", 16, "--synthesize_data: images per identity.", lower_bound=2,
                         **fv)
    flags.DEFINE_integer("synth_seed", 0, "--synthesize_data: generator seed.", lower_bound=0, **fv)
    flags.DEFINE_integer("input_size", 112, "Square input side in pixels.", lower_bound=16, **fv)
    flags.DEFINE_integer("random_crop_from", 128, "Weight-half augmentation: resize to this side, then take a random "
                         "--input_size crop (128 -> 112 in the original); 0 disables the crop (the flip stays).",
                         lower_bound=0, **fv)
    flags.DEFINE_integer("steps_per_epoch", 0, "Cap on the steps per epoch (0: one pass over the smaller half).",
                         lower_bound=0, **fv)
    # network
    flags.DEFINE_integer("channels", 16, "Initial cell width C.", lower_bound=1, **fv)
    flags.DEFINE_integer("num_cells", 8, "Cells of the search network; reductions at {L//3, 2L//3, L-1}.",
                         lower_bound=3, **fv)
    flags.DEFINE_integer("num_nodes", 4, "Intermediate nodes per cell.", lower_bound=1, **fv)
    flags.DEFINE_integer("stem_multiplier", 3, "Stem width = stem_multiplier * channels (3 in the search).",
                         lower_bound=1, **fv)
    flags.DEFINE_integer("embedding_size", 128, "Embedding width before the classifier.", lower_bound=1, **fv)
    flags.DEFINE_integer("head_width", 512, "Width of the tail's 1x1 conv and GDC.", lower_bound=1, **fv)
    flags.DEFINE_integer("gdc_groups", 128, "Groups of the tail's GDC convolution (must divide --head_width).",
                         lower_bound=1, **fv)
    # optimisation
    flags.DEFINE_integer("epochs", 50, "Search epochs.", lower_bound=1, **fv)
    flags.DEFINE_integer("batch_size", 128, "Global batch of each half per step (train and val batch).", lower_bound=1,
                         **fv)
    flags.DEFINE_integer("eval_batch_size", 0, "Batch of the per-epoch validation (0: --batch_size).", lower_bound=0,
                         **fv)
    flags.DEFINE_float("weight_lr", 0.1, "Initial weight learning rate (cosine-annealed per epoch).", lower_bound=0.0,
                       **fv)
    flags.DEFINE_float("weight_lr_min", 0.004, "Final weight learning rate (eta_min).", lower_bound=0.0, **fv)
    flags.DEFINE_float("weight_momentum", 0.9, "SGD momentum.", lower_bound=0.0, upper_bound=0.999999, **fv)
    flags.DEFINE_float("weight_decay", 3e-4, "Weight decay added to the weight gradient (PyTorch SGD).",
                       lower_bound=0.0, **fv)
    flags.DEFINE_float("weight_grad_clip", 5.0, "Global L2 norm the weight gradient is clipped to (0: no clipping).",
                       lower_bound=0.0, **fv)
    flags.DEFINE_float("alpha_lr", 1.2e-3, "Adam learning rate of alpha.", lower_bound=0.0, **fv)
    flags.DEFINE_float("alpha_beta1", 0.5, "Adam beta_1 of alpha.", lower_bound=0.0, upper_bound=0.999999, **fv)
    flags.DEFINE_float("alpha_beta2", 0.999, "Adam beta_2 of alpha.", lower_bound=0.0, upper_bound=0.999999, **fv)
    flags.DEFINE_float("alpha_weight_decay", 1e-3, "Weight decay added to the alpha gradient (PyTorch Adam).",
                       lower_bound=0.0, **fv)
    # algorithm
    flags.DEFINE_boolean("second_order", True, "Second-order (unrolled) alpha gradient as in DARTS and the original; "
                         "--nosecond_order for the first-order approximation.", **fv)
    flags.DEFINE_boolean("alpha_grad_includes_train_loss", False, "Reproduce the released search: step the weights "
                         "first and add grad_alpha L_train to the alpha gradient (spec §2.5 step 6). Default: "
                         "textbook DARTS.", **fv)
    flags.DEFINE_enum("edge_execution", "recompute", enum_values=list(EDGE_EXECUTION), help="How the mixed edges run "
                      "in the compiled step (same arithmetic): recompute = one shared function per distinct edge, "
                      "its activations recomputed in the backward pass (fast first step, low memory, ~20 % more "
                      "compute); inline = every edge traced inline, activations kept (minutes of tracing, ~2.5x the "
                      "memory at batch 8). See docs/search.md, Cost.", **fv)
    flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads: kernels run at once (0: one per CPU).",
                         lower_bound=0, **fv)
    flags.DEFINE_integer("intra_op_threads", 1, "TensorFlow intra-op threads: threads one kernel may use (0: one per "
                         "CPU). 1 by default: the search step is thousands of small kernels, faster side by side on "
                         "one thread each (batch 8 on 2 cores: 5.6 s per step against 7.5 s with TensorFlow's "
                         "default; docs/search.md, Cost).", lower_bound=0, **fv)
    flags.DEFINE_enum("allocator", "auto", enum_values=list(ALLOCATORS), help="The process' memory allocator, "
                      "preloaded by restarting the command (same PID) before TensorFlow starts: auto = jemalloc, "
                      "else tcmalloc, if installed (apt-get install libjemalloc2), else glibc's malloc. The paper "
                      "search's first step at batch 32: 60.4 s with jemalloc against 72.9 s with glibc, peak 3.46 "
                      "against 3.94 GB (docs/search.md, Cost).", **fv)
    flags.DEFINE_integer("graph_optimizer_passes", 1, "Rounds of Grappler's meta-optimizer over each compiled "
                         "function, on its first call (0: TensorFlow's default, two). 1 by default: on the search "
                         "step's graph the second round finds almost nothing and costs 5-7 s of the first step "
                         "(docs/search.md, Cost); the arithmetic is the same.", lower_bound=0, upper_bound=2, **fv)
    flags.DEFINE_enum("rank_edges_by", "softmax", enum_values=list(RANK_EDGES_BY), help="Genotype derivation: keep "
                      "each node's two edges with the largest softmax weight (DARTS) or raw alpha (the original).",
                      **fv)
    flags.DEFINE_enum("select_genotype", "final", enum_values=list(SELECT_GENOTYPE), help="Result: the last epoch's "
                      "genotype (DARTS) or the one of the epoch with the best validation top-1 (the original; that "
                      "half also trains alpha).", **fv)
    # absl's bounds let NaN through: every float flag is also checked to be finite.
    require_finite_floats(flag_values, SearchConfig.field_names())
