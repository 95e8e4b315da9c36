"""``SearchConfig``: everything one architecture-search run needs (spec §2). Field names equal the
flag names of ``python -m pocketnet_tf.search`` (:mod:`pocketnet_tf.search.flags`).

``from_flags`` runs every cross-field check before any work starts; ``to_flagfile`` writes the
resolved values back so ``--flagfile=<workdir>/flags.txt`` re-runs a search.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

STRATEGIES = ("default", "mirrored")
RANK_EDGES_BY = ("softmax", "alpha")
SELECT_GENOTYPE = ("final", "best")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """One search run. Defaults are the paper's (``NAS/util/config.py``, spec §2.1)."""

    workdir: str
    # run
    resume: bool = False
    strategy: str = "default"
    seed: int = 2
    verbose: int = 1
    checkpoint_every_steps: int = 0
    draw_every_epoch: bool = True
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
    rank_edges_by: str = "softmax"
    select_genotype: str = "final"

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_flags(cls, values: dict) -> "SearchConfig":
        """Builds and checks a config from ``{flag name: value}`` (unknown keys are ignored)."""
        names = set(cls.field_names())
        kwargs = {k: v for k, v in values.items() if k in names}
        if kwargs.get("data") == "":
            kwargs["data"] = None
        config = cls(**kwargs)
        config.check()
        return config

    def check(self) -> None:
        """Cross-field checks; raises ``ValueError``/``FileNotFoundError`` naming the problem."""

        def fail(msg):
            raise ValueError(f"search config: {msg}")

        if not self.workdir:
            fail("--workdir is required")
        for key, choices in (("strategy", STRATEGIES), ("rank_edges_by", RANK_EDGES_BY),
                             ("select_genotype", SELECT_GENOTYPE)):
            if getattr(self, key) not in choices:
                fail(f"--{key} must be one of {list(choices)}, received {getattr(self, key)!r}")
        for key, low in (("epochs", 1), ("batch_size", 1), ("input_size", 16), ("channels", 1), ("num_cells", 3),
                         ("num_nodes", 1), ("stem_multiplier", 1), ("embedding_size", 1), ("head_width", 1),
                         ("gdc_groups", 1), ("synth_identities", 2), ("synth_images_per_identity", 2)):
            if getattr(self, key) < low:
                fail(f"--{key} must be >= {low}, received {getattr(self, key)}")
        for key in ("steps_per_epoch", "checkpoint_every_steps", "eval_batch_size", "weight_lr", "weight_lr_min",
                    "weight_decay", "weight_grad_clip", "alpha_lr", "alpha_weight_decay", "random_crop_from",
                    "seed", "synth_seed"):
            if getattr(self, key) < 0:
                fail(f"--{key} must be >= 0, received {getattr(self, key)}")
        for key in ("weight_momentum", "alpha_beta1", "alpha_beta2"):
            if not 0 <= getattr(self, key) < 1:
                fail(f"--{key} must be in [0, 1), received {getattr(self, key)}")
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
        if self.data is None and not self.synthesize_data:
            fail("--data is required (a train.rec directory, folder tree or .tfrecord), or --synthesize_data")
        if self.data is not None and not self.synthesize_data and not Path(self.data).exists():
            raise FileNotFoundError(f"search config: dataset {self.data} not found")

    # -- derived values -----------------------------------------------------------------------

    @property
    def reduction_cells(self) -> tuple[int, ...]:
        return tuple(sorted({self.num_cells // 3, 2 * self.num_cells // 3, self.num_cells - 1}))

    @property
    def run_dir(self) -> Path:
        return Path(self.workdir)

    @property
    def data_location(self) -> Path:
        """``--data``, or ``<workdir>/data`` for synthesized data without ``--data``."""
        return Path(self.data) if self.data else self.run_dir / "data"

    @property
    def val_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size

    # -- output -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def to_flagfile(self) -> str:
        """The config as absl flagfile lines (``None`` fields omitted)."""
        lines = ["# Resolved flags of this search; re-run with --flagfile=<this file>."]
        for key, value in self.to_json().items():
            if value is None:
                continue
            if isinstance(value, bool):
                lines.append(f"--{key}" if value else f"--no{key}")
            else:
                lines.append(f"--{key}={value}")
        return "\n".join(lines) + "\n"
