"""The face command's frozen configuration, built from its flags."""

from __future__ import annotations

import dataclasses

COMMANDS = ("align", "enrol", "match")


@dataclasses.dataclass(frozen=True)
class FaceConfig:
    """One run of ``align``, ``enrol`` or ``match``; field names are the flag names (``inputs`` is
    ``--in``, a Python keyword)."""

    command: str
    inputs: tuple[str, ...]
    out: str | None = None
    bundle: str | None = None
    gallery: str | None = None
    name: str | None = None
    min_score: float = 0.5
    all_faces: bool = True
    num_threads: int = 1

    def __post_init__(self):
        if self.command not in COMMANDS:
            raise ValueError(f"unknown command {self.command!r}; expected one of {', '.join(COMMANDS)}")
        if not self.inputs:
            raise ValueError("--in is required")
        if self.command == "align" and not self.out:
            raise ValueError("align needs --out")
        if self.command != "align" and (not self.bundle or not self.gallery):
            raise ValueError(f"{self.command} needs --bundle and --gallery")
        if self.command == "enrol" and not self.name:
            raise ValueError("enrol needs --name")

    @classmethod
    def from_flags(cls, command: str, flag_values) -> "FaceConfig":
        """The config of ``command`` from parsed absl ``flag_values``; ValueError names a missing flag."""
        values = {f.name: flag_values[f.name].value for f in dataclasses.fields(cls) if f.name in flag_values}
        values.pop("command", None)
        return cls(command=command, inputs=tuple(flag_values["in"].value), **values)
