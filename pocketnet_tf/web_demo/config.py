"""The web demo command's frozen configuration, checked before any work."""

from __future__ import annotations

import dataclasses
from pathlib import Path

COMMANDS = ("serve", "build")


@dataclasses.dataclass(frozen=True)
class WebDemoConfig:
    command: str
    bundle: str
    port: int = 8000
    out: str | None = None
    web_root: str | None = None
    detector: str | None = None
    check_bundle: bool = True
    isolation: bool = True
    quiet: bool = False

    def __post_init__(self):
        if self.command not in COMMANDS:
            raise ValueError(f"unknown command {self.command!r}; expected one of {', '.join(COMMANDS)}")
        if not self.bundle:
            raise ValueError("--bundle is required (a directory written by python -m pocketnet_tf.convert)")
        if not Path(self.bundle).is_dir():
            raise FileNotFoundError(f"{self.bundle}: bundle directory not found")
        if self.command == "build" and not self.out:
            raise ValueError("build needs --out=DIR")

    @classmethod
    def from_flags(cls, command: str, flag_values) -> "WebDemoConfig":
        names = [f.name for f in dataclasses.fields(cls) if f.name != "command"]
        return cls(command=command, **{name: flag_values[name].value for name in names})
