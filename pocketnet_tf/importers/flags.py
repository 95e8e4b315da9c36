"""Flags of ``python -m pocketnet_tf.import_weights`` (PyTorch checkpoint -> ``.keras``)."""

from __future__ import annotations

from absl import flags


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the import command's flags on ``flag_values`` (called only by its entry point)."""
    fv = {"flag_values": flag_values}
    flags.DEFINE_string("model", None, "Registry name: PocketNetS-128, PocketNetM-256, iresnet100, ...", **fv)
    flags.DEFINE_string("pytorch", None, "The original state_dict (.pth/.pt from torch.save, or .safetensors).", **fv)
    flags.DEFINE_string("out", None, "Output .keras file (written atomically).", **fv)
    flags.DEFINE_integer("embedding_size", None, "Override the preset's embedding size.", lower_bound=1, **fv)
    flags.DEFINE_string("genotype", None, "PocketNet only: genotype name, JSON/text or file.", **fv)
    flags.mark_flags_as_required(["model", "pytorch", "out"], flag_values=flag_values)
