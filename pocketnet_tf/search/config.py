"""``SearchConfig``: everything one architecture-search run needs (spec §2). Field names equal the
flag names of ``python -m pocketnet_tf.search`` (:mod:`pocketnet_tf.search.flags`).

``from_flags`` runs every cross-field check before any work starts; ``to_flagfile`` writes the
resolved values back so ``--flagfile=<workdir>/flags.txt`` re-runs a search.
"""

from __future__ import annotations

import dataclasses

from pocketnet_tf.run_config import RunConfig
from pocketnet_tf.fitting.precision import PRECISIONS
from pocketnet_tf.allocator import ALLOCATORS
from pocketnet_tf.threads import GRAPH_OPTIMIZER_PASSES

STRATEGIES = ("default", "mirrored")
RANK_EDGES_BY = ("softmax", "alpha")
SELECT_GENOTYPE = ("final", "best")
#: How the mixed edges run in a compiled step (``SearchNetwork.set_edge_execution``).
EDGE_EXECUTION = ("recompute", "inline")


@dataclasses.dataclass(frozen=True)
class SearchConfig(RunConfig):
    """One search run. The numbers (network, data, optimisers, epochs) default to the paper's
    (``NAS/util/config.py``, spec §2.1). Three algorithm defaults are deliberately textbook DARTS,
    not the original code's (spec §9.12, docs/search.md): the alpha step's order
    (``alpha_grad_includes_train_loss=False``: the original steps alpha after the weight backward,
    so its alpha gradient also holds grad_alpha L_train), edge ranking (``rank_edges_by="softmax"``;
    the original ranks by raw alpha) and the result (``select_genotype="final"``; the original
    keeps the best epoch's genotype). ``--alpha_grad_includes_train_loss --rank_edges_by=alpha
    --select_genotype=best`` restores all three."""

    workdir: str
    # run
    resume: bool = False
    strategy: str = "default"
    seed: int = 2
    verbose: int = 1
    checkpoint_every_steps: int = 0
    draw_every_epoch: bool = True
    precision: str = "float32"
    # data
    data: str | None = None
    synthesize_data: bool = False
    synth_identities: int = 40
    synth_images_per_identity: int = 16
    synth_seed: int = 0
    input_size: int = 112
    random_crop_from: int = 128
    steps_per_epoch: int = 0
    # search network
    channels: int = 16
    num_cells: int = 8
    num_nodes: int = 4
    stem_multiplier: int = 3
    embedding_size: int = 128
    head_width: int = 512
    gdc_groups: int = 128
    # optimisation
    epochs: int = 50
    batch_size: int = 128
    eval_batch_size: int = 0
    weight_lr: float = 0.1
    weight_lr_min: float = 0.004
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    weight_grad_clip: float = 5.0
    alpha_lr: float = 1.2e-3
    alpha_beta1: float = 0.5
    alpha_beta2: float = 0.999
    alpha_weight_decay: float = 1e-3
    # the algorithm
    second_order: bool = True
    alpha_grad_includes_train_loss: bool = False
    edge_execution: str = "recompute"
    # the process
    inter_op_threads: int = 0
    intra_op_threads: int = 1
    graph_optimizer_passes: int = 1
    allocator: str = "auto"
    rank_edges_by: str = "softmax"
    select_genotype: str = "final"

    # -- construction -------------------------------------------------------------------------

    _name = "search config"
    _empty_means_none = ("data",)
    _flagfile_header = "# Resolved flags of this search; re-run with --flagfile=<this file>."

    def check(self) -> None:
        """Cross-field checks; raises ``ValueError``/``FileNotFoundError`` naming the problem."""
        fail = self.fail
        if not self.workdir:
            fail("--workdir is required")
        self.check_ranges(
            choices=(("strategy", STRATEGIES), ("rank_edges_by", RANK_EDGES_BY), ("select_genotype", SELECT_GENOTYPE),
                     ("precision", PRECISIONS), ("edge_execution", EDGE_EXECUTION),
                     ("allocator", ALLOCATORS)),
            at_least=(("epochs", 1), ("batch_size", 1), ("input_size", 16), ("channels", 1), ("num_cells", 3),
                      ("num_nodes", 1), ("stem_multiplier", 1), ("embedding_size", 1), ("head_width", 1),
                      ("gdc_groups", 1), ("synth_identities", 2), ("synth_images_per_identity", 2)),
            non_negative=("steps_per_epoch", "checkpoint_every_steps", "eval_batch_size", "weight_lr", "weight_lr_min",
                          "weight_decay", "weight_grad_clip", "alpha_lr", "alpha_weight_decay", "random_crop_from",
                          "seed", "synth_seed", "inter_op_threads", "intra_op_threads"),
            unit_interval=("weight_momentum", "alpha_beta1", "alpha_beta2"),
        )
        self.check_precision()
        if isinstance(self.graph_optimizer_passes, bool) or self.graph_optimizer_passes not in GRAPH_OPTIMIZER_PASSES:
            fail(f"--graph_optimizer_passes={self.graph_optimizer_passes!r} must be one of {GRAPH_OPTIMIZER_PASSES} "
                 "(0: TensorFlow's default, two)")
        if self.weight_lr_min > self.weight_lr:
            fail(f"--weight_lr_min={self.weight_lr_min} exceeds --weight_lr={self.weight_lr}")
        if self.head_width % self.gdc_groups:
            fail(f"--gdc_groups={self.gdc_groups} must divide --head_width={self.head_width}")
        factor = 2 ** (1 + len(self.reduction_cells))
        if self.input_size % factor:
            fail(f"--input_size={self.input_size} must be divisible by {factor} (stem stride 2 and "
                 f"{len(self.reduction_cells)} reduction cells at {list(self.reduction_cells)})")
        if self.random_crop_from and self.random_crop_from < self.input_size:
            fail(f"--random_crop_from={self.random_crop_from} must be 0 (no crop) or >= --input_size={self.input_size}")
        self.check_data()

    def check_precision(self) -> None:
        """The search supports float32 and first-order mixed_bfloat16 (see docs/search.md)."""
        if self.precision == "mixed_float16":
            # fp16 needs loss scaling, and the architect's alpha gradient is not loss-scaled.
            self.fail("--precision=mixed_float16 is not supported by the search (its alpha gradient is not "
                      "loss-scaled); use mixed_bfloat16 with --nosecond_order, or float32")
        if self.precision == "mixed_bfloat16" and self.second_order:
            # The second-order finite difference moves each weight by about 0.01 / sqrt(#weights),
            # far below bfloat16's resolution (2^-8 relative): the perturbation would round away.
            self.fail("--precision=mixed_bfloat16 needs --nosecond_order: the second-order alpha gradient's finite "
                      "difference step is below bfloat16 resolution")

    # -- derived values -----------------------------------------------------------------------

    @property
    def reduction_cells(self) -> tuple[int, ...]:
        from pocketnet_tf.models.pocketnet import reduction_indices

        return reduction_indices(self.num_cells)

    @property
    def val_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size
