"""``DataConfig``: one run of ``python -m pocketnet_tf.data synth | convert | info``, built from its
flags (:mod:`pocketnet_tf.data.flags`) and checked before any work starts."""

from __future__ import annotations

import dataclasses

from pocketnet_tf.run_config import flag_fields

COMMANDS = ("synth", "convert", "info")
#: The flags each subcommand cannot run without.
REQUIRED = {"synth": ("out",), "convert": ("src", "out"), "info": ("src",)}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Field names equal the flag names; ``command`` is the subcommand."""

    command: str
    out: str | None = None
    src: str | None = None
    identities: int = 200
    images_per_identity: int = 20
    seed: int = 0
    size: int = 112
    val_identities: int = 50
    val_pairs: int = 600
    nuisance: float = 1.0
    shards: int | None = None
    decode: bool = False

    def __post_init__(self):
        if self.command not in COMMANDS:
            raise ValueError(f"unknown command {self.command!r}; expected one of {', '.join(COMMANDS)}")
        for name in REQUIRED[self.command]:
            if not getattr(self, name):
                raise ValueError(f"{self.command} needs --{name}")
        if self.command == "synth":
            self.synth_config()  # its range checks, before any file is written

    @classmethod
    def from_flags(cls, command: str, flag_values) -> "DataConfig":
        """The config of ``command`` from parsed absl ``flag_values``; ValueError names a missing flag."""
        values = flag_fields(cls, flag_values)
        values.pop("command", None)
        return cls(command=command, **values)

    def synth_config(self):
        """``synth``'s arguments as the generator's own config (:class:`pocketnet_tf.data.synthetic.SynthConfig`):
        every generator argument is a flag of the same name, so a new one cannot be left out here."""
        from pocketnet_tf.data.synthetic import SynthConfig

        return SynthConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(SynthConfig)})
