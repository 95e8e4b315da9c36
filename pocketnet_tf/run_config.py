"""What the commands' frozen config dataclasses share: flags in, range checks, flagfile out.

:func:`flag_fields` is how every stage's ``Config.from_flags(flag_values)`` reads its flags.

:class:`RunConfig` is a mixin for ``@dataclasses.dataclass(frozen=True)`` classes whose field
names equal their command's flag names (``TrainConfig``, ``SearchConfig``). A subclass sets
``_name`` (the word error messages start with), lists the string fields where ``""`` means
"not given", normalises other values in ``_normalize`` and implements ``check``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path


def as_list(value) -> tuple:
    """``"a, b"`` / ``["a", "b"]`` / ``None`` -> ``("a", "b")`` / ``()``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def flag_fields(config_class, flag_values) -> dict:
    """``{field: value}`` for each field of the dataclass ``config_class`` that ``flag_values``
    (a parsed absl ``FlagValues`` or a ``{flag name: value}`` mapping) holds. Every stage's
    ``Config.from_flags`` reads its flags through this."""
    names = [f.name for f in dataclasses.fields(config_class)]
    if isinstance(flag_values, Mapping):
        return {name: flag_values[name] for name in names if name in flag_values}
    return {name: flag_values[name].value for name in names if name in flag_values}


class RunConfig:
    _name = "config"
    _empty_means_none: tuple[str, ...] = ()
    _flagfile_header = "# Resolved flags of this run; re-run with --flagfile=<this file>."

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def _normalize(cls, kwargs: dict) -> dict:
        return kwargs

    @classmethod
    def from_flags(cls, flag_values):
        """Builds and checks a config from parsed flags: an absl ``FlagValues`` (the command's), or
        a ``{flag name: value}`` mapping when a caller overrides some values (the KD ablation's
        arms). Names that are not fields are ignored; fields with no flag keep their defaults."""
        kwargs = flag_fields(cls, flag_values)
        for key in cls._empty_means_none:
            if kwargs.get(key) == "":
                kwargs[key] = None
        config = cls(**cls._normalize(kwargs))
        config.check_finite()
        config.check()
        return config

    def check_finite(self) -> None:
        """Every float field must be finite (NaN passes any range check: its comparisons are false)."""
        import math

        for key in self.field_names():
            value = getattr(self, key)
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(f"--{key} must be a finite number, received {value}")

    def check(self) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def fail(self, msg: str):
        raise ValueError(f"{self._name}: {msg}")

    def check_ranges(self, *, at_least=(), non_negative=(), unit_interval=(), choices=()) -> None:
        """``at_least``: ``(field, lower bound)`` pairs; ``non_negative``: fields >= 0;
        ``unit_interval``: fields in [0, 1); ``choices``: ``(field, allowed values)`` pairs."""
        for key, allowed in choices:
            if getattr(self, key) not in allowed:
                self.fail(f"--{key} must be one of {list(allowed)}, received {getattr(self, key)!r}")
        for key, low in at_least:
            if getattr(self, key) < low:
                self.fail(f"--{key} must be >= {low}, received {getattr(self, key)}")
        for key in non_negative:
            if getattr(self, key) < 0:
                self.fail(f"--{key} must be >= 0, received {getattr(self, key)}")
        for key in unit_interval:
            if not 0 <= getattr(self, key) < 1:
                self.fail(f"--{key} must be in [0, 1), received {getattr(self, key)}")

    def check_data(self) -> None:
        """``--data`` or ``--synthesize_data``; a given dataset must exist."""
        if self.data is None and not self.synthesize_data:
            self.fail("--data is required (a train.rec directory, folder tree or .tfrecord), or --synthesize_data")
        if self.data is not None and not self.synthesize_data and not Path(self.data).exists():
            raise FileNotFoundError(f"{self._name}: dataset {self.data} not found")

    # -- derived values ----------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return Path(self.workdir)

    @property
    def data_location(self) -> Path:
        """``--data``, or ``<workdir>/data`` for synthesized data without ``--data``."""
        return Path(self.data) if self.data else self.run_dir / "data"

    # -- output ------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def to_flagfile(self) -> str:
        """The config as absl flagfile lines (``None`` fields omitted)."""
        lines = [self._flagfile_header]
        for key, value in self.to_json().items():
            if value is None:
                continue
            if isinstance(value, bool):
                lines.append(f"--{key}" if value else f"--no{key}")
            elif isinstance(value, list):
                lines.append(f"--{key}={','.join(str(v) for v in value)}")
            else:
                lines.append(f"--{key}={value}")
        return "\n".join(lines) + "\n"


def run_command(argv, make_config, run, errors: tuple, summarize) -> int:
    """The body of a config-driven command's ``main``: build and check the config from the parsed
    flags, run it, print a JSON summary; a bad configuration, bad data, an unusable input
    (``errors``) or an output path that cannot be written prints ``error: ...`` on stderr and
    returns exit status 2; a diverged run (non-finite loss) returns 3."""
    import sys

    from absl import app

    from pocketnet_tf.fitting.guard import EXIT_DIVERGED, DivergenceError

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    try:
        results = run(make_config())
    except DivergenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, OSError, *errors) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summarize(results), indent=2))
    return 0
