"""Original PyTorch checkpoint -> ``.keras`` file: the one library call behind ``import_weights``.

``import_checkpoint(ImportConfig(...))`` reads the state_dict (weights-only, no code executed),
builds the registry model with the requested genotype / embedding size, checks and assigns every
tensor, and writes the ``.keras`` file atomically (an existing file is replaced only on success).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pocketnet_tf.importers import state_dict_file, torch_checkpoint
from pocketnet_tf.io_utils import atomic_path, check_output
from pocketnet_tf.models import registry

#: Registry families that have a PyTorch key map.
IMPORTABLE_FAMILIES = ("pocketnet", "iresnet")


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    """Arguments of ``python -m pocketnet_tf.import_weights`` (field names = flag names).

    Attributes:
      model: registry name (``PocketNetS-128``, ``PocketNetM-256``, ``iresnet100`` ...).
      pytorch: the ``.pth``/``.pt`` (or ``.safetensors``) state_dict of the original.
      out: the ``.keras`` file to write.
      embedding_size: replaces the preset's embedding size (e.g. 128 for PocketNet's iresnet100
        teacher; the registry's iResNets default to 512).
      genotype: PocketNet only: a published genotype name, JSON/text, or a file.
    """

    model: str
    pytorch: str
    out: str
    embedding_size: int | None = None
    genotype: str | None = None

    def __post_init__(self):
        preset = registry.get_preset(self.model)  # ValueError naming the known models
        if preset.family not in IMPORTABLE_FAMILIES:
            importable = [n for n, p in registry.PRESETS.items() if p.family in IMPORTABLE_FAMILIES]
            raise ValueError(
                f"{self.model}: no PyTorch checkpoint layout for the {preset.family} family; "
                f"expected one of {importable}"
            )
        if self.genotype is not None and preset.family != "pocketnet":
            raise ValueError(f"{self.model}: --genotype applies to PocketNet models only")
        if self.embedding_size is not None and (
            isinstance(self.embedding_size, bool) or not isinstance(self.embedding_size, int) or self.embedding_size < 1
        ):
            raise ValueError(f"embedding_size must be a positive int, received {self.embedding_size!r}")
        if not str(self.out).endswith(".keras"):
            raise ValueError(f"{self.out}: the output file name must end with .keras")
        if not Path(self.pytorch).is_file():
            raise FileNotFoundError(f"{self.pytorch}: no such checkpoint file")

    @classmethod
    def from_flags(cls, flag_values) -> "ImportConfig":
        """The config from parsed absl ``flag_values`` (:mod:`pocketnet_tf.importers.flags`)."""
        from pocketnet_tf.run_config import flag_fields

        return cls(**flag_fields(cls, flag_values))


def build_model(config: ImportConfig):
    """The Keras model the checkpoint is imported into."""
    return registry.build(config.model, genotype=config.genotype, embedding_size=config.embedding_size)


def import_checkpoint(config: ImportConfig):
    """Reads, checks, assigns and saves. Returns ``(model, ImportReport)``.

    Raises:
      FileNotFoundError / ValueError: unreadable or refused checkpoint, or a
        :class:`~pocketnet_tf.importers.torch_checkpoint.StateDictMismatchError` listing every
        missing, unexpected or mis-shaped tensor. Nothing is written then.
    """
    check_output(config.out, directory=False)  # an unwritable --out fails before the import work
    state_dict = state_dict_file.load_state_dict(config.pytorch)
    model = build_model(config)
    report = torch_checkpoint.assign_state_dict(model, state_dict, source=str(config.pytorch))
    with atomic_path(config.out) as tmp:
        model.save(tmp)
    return model, report
