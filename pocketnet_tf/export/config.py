"""The export stage's frozen configs, built from their flags (:mod:`pocketnet_tf.export.flags`)
and checked before any work starts: :class:`ExportConfig` (``python -m pocketnet_tf.convert``)
and :class:`VerifyConfig` (``python -m pocketnet_tf.verify_bundle``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pocketnet_tf.run_config import flag_fields


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """Arguments of :func:`pocketnet_tf.export.exporter.run_export`; field names equal the
    ``python -m pocketnet_tf.convert`` flags."""

    model: str
    mode: str
    out: str
    representative: str | None = None
    bin: tuple[str, ...] = ()
    validation_data: str | None = None
    num_calibration: int = 200
    num_validation: int = 100
    golden_count: int = 4
    raw_input: bool = False
    l2_normalize: bool = False
    dynamic_batch: bool = False
    prelu_rewrite: str = "auto"
    backend: str | None = None
    min_cosine: float | None = None
    mean_cosine: float | None = None
    p01_cosine: float | None = None
    max_abs_error: float | None = None
    max_accuracy_drop: float | None = None
    far: float = 1e-3
    seed: int = 0
    num_threads: int = 1
    #: Timed invocations of the converted model and of an fp32 conversion (0: do not measure).
    latency_runs: int = 20

    def __post_init__(self):
        from pocketnet_tf.export import quantize, rewrite

        if not self.model or not self.out:
            raise ValueError("--model and --out are required")
        object.__setattr__(self, "bin", tuple(self.bin or ()))
        if self.mode not in quantize.MODES:
            raise ValueError(f"mode must be one of {quantize.MODES}, got {self.mode!r}")
        if self.prelu_rewrite != "auto" and self.prelu_rewrite not in rewrite.PRELU_REWRITES:
            raise ValueError(f"prelu_rewrite must be auto or one of {rewrite.PRELU_REWRITES}, got {self.prelu_rewrite!r}")
        if self.backend is not None and self.backend not in quantize.BACKENDS:
            raise ValueError(f"backend must be one of {quantize.BACKENDS}, got {self.backend!r}")
        if not Path(self.model).exists():
            raise FileNotFoundError(f"{self.model}: model not found")
        for path in (self.representative, self.validation_data, *self.bin):
            if path is not None and not Path(path).exists():
                raise FileNotFoundError(f"{path}: not found")
        if self.mode in quantize.NEEDS_CALIBRATION and not self.representative:
            raise ValueError(f"mode {self.mode} needs --representative (a dataset directory or a .bin)")
        if not (self.representative or self.validation_data or self.bin):
            raise ValueError("validation needs held-out images: give --representative, --validation_data or --bin")
        for name in ("num_calibration", "num_validation"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.golden_count < 1:
            raise ValueError(f"golden_count must be >= 1, got {self.golden_count}")
        if not 0.0 < self.far < 1.0:
            raise ValueError(f"far must be in (0, 1), got {self.far}")

    @classmethod
    def from_flags(cls, flag_values) -> "ExportConfig":
        """The config from parsed absl ``flag_values`` (or a ``{flag name: value}`` mapping)."""
        return cls(**flag_fields(cls, flag_values))

    @property
    def resolved_prelu_rewrite(self) -> str:
        if self.prelu_rewrite != "auto":
            return self.prelu_rewrite
        # Float graphs run PRELU natively (fastest); integer graphs need it gone (XNNPACK).
        return "fold" if self.mode in ("int8", "int16x8") else "none"

    def thresholds(self):
        """The mode's :class:`pocketnet_tf.export.validate.Thresholds` with this config's overrides."""
        from pocketnet_tf.export import validate

        base = validate.DEFAULT_THRESHOLDS[self.mode]
        overrides = {k: getattr(self, k) for k in ("min_cosine", "mean_cosine", "p01_cosine", "max_abs_error",
                                                  "max_accuracy_drop") if getattr(self, k) is not None}
        return dataclasses.replace(base, **overrides)


@dataclasses.dataclass(frozen=True)
class VerifyConfig:
    """One ``python -m pocketnet_tf.verify_bundle DIR`` run: the bundle directory and the flags."""

    bundle: str
    num_threads: int = 1
    json: bool = False

    def __post_init__(self):
        if not self.bundle:
            raise ValueError("usage: python -m pocketnet_tf.verify_bundle DIR")
        if self.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {self.num_threads}")

    @classmethod
    def from_flags(cls, bundle: str, flag_values) -> "VerifyConfig":
        values = flag_fields(cls, flag_values)
        values.pop("bundle", None)
        return cls(bundle=bundle, **values)
