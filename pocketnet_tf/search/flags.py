"""absl flags of ``python -m pocketnet_tf.search``, imported only by its ``__main__``.

Flag names equal the fields of :class:`pocketnet_tf.search.config.SearchConfig`; defaults are the
paper's search settings (spec §2.1).
"""

from __future__ import annotations

from absl import flags


def define_search_flags(flag_values=flags.FLAGS) -> None:
    """Defines the search flags in ``flag_values`` (the global ``FLAGS`` by default; tests pass a
    fresh ``FlagValues``)."""
    from pocketnet_tf.search.config import RANK_EDGES_BY, SELECT_GENOTYPE, STRATEGIES
    from pocketnet_tf.train.precision import PRECISIONS

    def d(kind, name, default, help_text=None, **kwargs):
        getattr(flags, f"DEFINE_{kind}")(name, default, help=help_text, flag_values=flag_values, **kwargs)

    # run
    d("string", "workdir", None, "Run directory: search.log, checkpoints/, history.json, pictures, genotype.json, "
      "genotype.txt, results.json, config.json, flags.txt (and data/ with --synthesize_data).")
    d("boolean", "resume", False, "Continue the search in --workdir from its newest checkpoint. Without it an "
      "existing checkpoint is an error.")
    d("enum", "strategy", "default", enum_values=list(STRATEGIES), help_text="tf.distribute strategy: default (one device) or mirrored "
      "(all local devices; the global batch is split across them).")
    d("integer", "seed", 2, "Seed of the initialisation, the 50/50 split and the data order (2 in the original).",
      lower_bound=0)
    d("integer", "verbose", 1, "Keras progress output: 0 silent, 1 progress bar, 2 one line per epoch.",
      lower_bound=0, upper_bound=2)
    d("integer", "checkpoint_every_steps", 0, "Also checkpoint every N steps (0: at epoch ends only).", lower_bound=0)
    d("boolean", "draw_every_epoch", True, "Redraw the cell graphs and alpha heat-maps after every epoch.")
    d("enum", "precision", "float32", enum_values=list(PRECISIONS), help_text="Compute precision (Keras dtype "
      "policy) of the search network: float32, or mixed_bfloat16 with --nosecond_order (mixed_float16 is rejected: "
      "the alpha gradient is not loss-scaled). Variables and the losses stay float32.")
    # data
    d("string", "data", None, "Dataset: a directory with train.rec/train.idx (insightface RecordIO, e.g. "
      "CASIA-WebFace), a folder-per-identity tree, or a .tfrecord. Default with --synthesize_data: <workdir>/data.")
    d("boolean", "synthesize_data", False, "Generate a synthetic identity dataset (RecordIO) into --data (or "
      "<workdir>/data) if it is not there yet.")
    d("integer", "synth_identities", 40, "--synthesize_data: identities.", lower_bound=2)
    d("integer", "synth_images_per_identity", 16, "--synthesize_data: images per identity.", lower_bound=2)
    d("integer", "synth_seed", 0, "--synthesize_data: generator seed.", lower_bound=0)
    d("integer", "input_size", 112, "Square input side in pixels.", lower_bound=16)
    d("integer", "random_crop_from", 128, "Weight-half augmentation: resize to this side, then take a random "
      "--input_size crop (128 -> 112 in the original); 0 disables the crop (the flip stays).", lower_bound=0)
    d("integer", "steps_per_epoch", 0, "Cap on the steps per epoch (0: one pass over the smaller half).",
      lower_bound=0)
    # network
    d("integer", "channels", 16, "Initial cell width C.", lower_bound=1)
    d("integer", "num_cells", 8, "Cells of the search network; reductions at {L//3, 2L//3, L-1}.", lower_bound=3)
    d("integer", "num_nodes", 4, "Intermediate nodes per cell.", lower_bound=1)
    d("integer", "stem_multiplier", 3, "Stem width = stem_multiplier * channels (3 in the search).", lower_bound=1)
    d("integer", "embedding_size", 128, "Embedding width before the classifier.", lower_bound=1)
    d("integer", "head_width", 512, "Width of the tail's 1x1 conv and GDC.", lower_bound=1)
    d("integer", "gdc_groups", 128, "Groups of the tail's GDC convolution (must divide --head_width).",
      lower_bound=1)
    # optimisation
    d("integer", "epochs", 50, "Search epochs.", lower_bound=1)
    d("integer", "batch_size", 128, "Global batch of each half per step (train and val batch).", lower_bound=1)
    d("integer", "eval_batch_size", 0, "Batch of the per-epoch validation (0: --batch_size).", lower_bound=0)
    d("float", "weight_lr", 0.1, "Initial weight learning rate (cosine-annealed per epoch).", lower_bound=0.0)
    d("float", "weight_lr_min", 0.004, "Final weight learning rate (eta_min).", lower_bound=0.0)
    d("float", "weight_momentum", 0.9, "SGD momentum.", lower_bound=0.0, upper_bound=0.999999)
    d("float", "weight_decay", 3e-4, "Weight decay added to the weight gradient (PyTorch SGD).", lower_bound=0.0)
    d("float", "weight_grad_clip", 5.0, "Global L2 norm the weight gradient is clipped to (0: no clipping).",
      lower_bound=0.0)
    d("float", "alpha_lr", 1.2e-3, "Adam learning rate of alpha.", lower_bound=0.0)
    d("float", "alpha_beta1", 0.5, "Adam beta_1 of alpha.", lower_bound=0.0, upper_bound=0.999999)
    d("float", "alpha_beta2", 0.999, "Adam beta_2 of alpha.", lower_bound=0.0, upper_bound=0.999999)
    d("float", "alpha_weight_decay", 1e-3, "Weight decay added to the alpha gradient (PyTorch Adam).",
      lower_bound=0.0)
    # algorithm
    d("boolean", "second_order", True, "Second-order (unrolled) alpha gradient as in DARTS and the original; "
      "--nosecond_order for the first-order approximation.")
    d("boolean", "alpha_grad_includes_train_loss", False, "Reproduce the released search: step the weights first "
      "and add grad_alpha L_train to the alpha gradient (spec §2.5 step 6). Default: textbook DARTS.")
    d("enum", "rank_edges_by", "softmax", enum_values=list(RANK_EDGES_BY), help_text="Genotype derivation: keep each node's two edges "
      "with the largest softmax weight (DARTS) or raw alpha (the original).")
    d("enum", "select_genotype", "final", enum_values=list(SELECT_GENOTYPE), help_text="Result: the last epoch's genotype (DARTS) or the "
      "one of the epoch with the best validation top-1 (the original; that half also trains alpha).")
    # absl's bounds let NaN through: every float flag is also checked to be finite.
    from pocketnet_tf.flags import require_finite_floats
    from pocketnet_tf.search.config import SearchConfig

    require_finite_floats(flag_values, SearchConfig.field_names())


def search_flag_values(flag_values=flags.FLAGS) -> dict:
    """``{flag name: value}`` of the search flags after parsing."""
    from pocketnet_tf.search.config import SearchConfig

    return {name: flag_values[name].value for name in SearchConfig.field_names() if name in flag_values}
