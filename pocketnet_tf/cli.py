"""What every ``python -m pocketnet_tf.<command>`` shares: flag names written with dashes.

Flags are defined with underscores (``--images_per_identity``); users also write
``--images-per-identity=3`` and ``--no-decode``. :func:`normalize_dashes` rewrites those to the
defined names before absl parses the command line, and :func:`parse_flags` is the
``flags_parser`` every command passes to ``absl.app.run``. :func:`require_finite_floats` is the
one check the stages' ``define_flags`` add beyond absl's bounds.
"""

from __future__ import annotations

from absl import app, flags

__all__ = ["normalize_dashes", "parse_flags", "require_finite_floats"]


def _defined_name(name: str, defined) -> str | None:
    """The absl spelling of ``name`` (dashes already turned into underscores), or None."""
    if name in defined:
        return name
    if name.startswith("no"):
        bare = name[2:].lstrip("_")
        if bare in defined:
            return "no" + bare
    return None


def normalize_dashes(argv, defined) -> list:
    """``--batch-size=3`` -> ``--batch_size=3``, ``--no-decode`` -> ``--nodecode``.

    Only arguments that name a flag in ``defined`` (flag names, or a ``FlagValues``) change;
    anything else (positional arguments, ``--`` and what follows it, unknown flags) is kept, so
    absl still reports an unknown flag under the name the user wrote.
    """
    out = []
    argv = list(argv)
    for index, arg in enumerate(argv):
        if arg == "--":
            return out + argv[index:]
        if arg.startswith("--") and not arg.startswith("---"):
            name, eq, value = arg[2:].partition("=")
            fixed = _defined_name(name.replace("-", "_"), defined) if "-" in name else None
            if fixed is not None:
                arg = f"--{fixed}{eq}{value}"
        out.append(arg)
    return out


def parse_flags(argv, flag_values=None) -> list:
    """absl's own parsing (usage message and exit status 1 on a bad flag) after
    :func:`normalize_dashes`; pass as ``app.run(main, flags_parser=parse_flags)``."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    if flag_values is flags.FLAGS:
        return app.parse_flags_with_usage(normalize_dashes(argv, flag_values))
    return flag_values(normalize_dashes(argv, flag_values))


def require_finite_floats(flag_values, names) -> None:
    """Adds a validator to every float flag among ``names``: absl's bounds let NaN through
    (every comparison with NaN is false) and accept +-inf, so ``--base_lr=nan`` would parse."""
    import math

    for name in names:
        if name in flag_values and flag_values[name].flag_type() == "float":
            flags.register_validator(name, lambda v: v is None or math.isfinite(v),
                                     message=f"--{name} must be a finite number (not nan or inf)",
                                     flag_values=flag_values)
