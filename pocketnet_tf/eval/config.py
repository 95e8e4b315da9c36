"""``EvalConfig``: one ``python -m pocketnet_tf.evaluate`` run, built from its flags
(:mod:`pocketnet_tf.eval.flags`) and checked before any model is loaded."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pocketnet_tf.run_config import flag_fields


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Fields equal the flag names of ``python -m pocketnet_tf.evaluate``."""

    model: str
    out: str
    bin: tuple[str, ...] = ()
    ijb: str | None = None
    ijb_set: str = "IJBC"
    batch_size: int = 64
    n_folds: int = 10
    flip: bool = True
    num_threads: int | None = None
    workers: int = 2
    progress: bool = True
    plots: bool = True
    megaface_algo: str = "pocketnet"
    megaface_facescrub_images: str | None = None
    megaface_facescrub_list: str | None = None
    megaface_distractor_images: str | None = None
    megaface_distractor_list: str | None = None
    megaface_facescrub_noises: str | None = None
    megaface_distractor_noises: str | None = None
    megaface_resume: bool = False

    def __post_init__(self):
        object.__setattr__(self, "bin", tuple(b for b in self.bin if b))
        if not self.model:
            raise ValueError("--model is required (.keras file, SavedModel directory or .tflite)")
        if not self.out:
            raise ValueError("--out is required")
        mf = (self.megaface_facescrub_images, self.megaface_facescrub_list,
              self.megaface_distractor_images, self.megaface_distractor_list)
        if any(mf) and not all(mf):
            raise ValueError("MegaFace export needs all of --megaface_facescrub_images, --megaface_facescrub_list, "
                             "--megaface_distractor_images and --megaface_distractor_list")
        noises = (self.megaface_facescrub_noises, self.megaface_distractor_noises)
        if any(noises) and not (all(noises) and all(mf)):
            raise ValueError("MegaFace refinement needs both noise lists and the MegaFace export flags")
        if not self.bin and not self.ijb and not all(mf):
            raise ValueError("nothing to evaluate: give --bin, --ijb or the MegaFace flags")
        if self.batch_size < 1 or self.n_folds < 2 or self.workers < 1:
            raise ValueError(f"bad sizes: batch_size={self.batch_size} (>= 1), n_folds={self.n_folds} (>= 2), "
                             f"workers={self.workers} (>= 1)")
        if self.ijb:
            from pocketnet_tf.eval.ijb import canonical_set_name

            object.__setattr__(self, "ijb_set", canonical_set_name(self.ijb_set))
        for path in self.bin:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: verification .bin file not found")
        names = [Path(p).stem for p in self.bin]
        if len(set(names)) != len(names):
            raise ValueError(f"two --bin files share a set name: {names}")
        if self.ijb and not Path(self.ijb).is_dir():
            raise FileNotFoundError(f"{self.ijb}: IJB directory not found")

    @classmethod
    def from_flags(cls, flag_values) -> "EvalConfig":
        """The config from parsed absl ``flag_values`` (or a ``{flag name: value}`` mapping);
        ``--num_threads=0`` means the runtime's default (``None``)."""
        values = flag_fields(cls, flag_values)
        values["num_threads"] = values.get("num_threads") or None
        return cls(**values)
