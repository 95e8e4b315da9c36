"""Flags of ``python -m pocketnet_tf.models list | summary NAME``."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the models command's flags on ``flag_values`` (called only by its ``__main__``)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_boolean("json", False, "Print the summary as JSON.", **fv)
    flags.DEFINE_integer("embedding_size", None, "Override the preset's embedding size.", lower_bound=1, **fv)
    flags.DEFINE_string("genotype", None, "PocketNet only: genotype name, JSON/text file.", **fv)
    flags.DEFINE_integer("input_size", 112, "Square input side.", lower_bound=16, **fv)
