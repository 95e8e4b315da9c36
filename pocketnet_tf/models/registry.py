"""The model registry: the only place that turns a model name and options into constructor args.

Names are the paper's (``PocketNetS-128``, ``PocketNetM-256``, ``MobileFaceNet``, ``iresnet100``).
"""

from __future__ import annotations

import dataclasses

from pocketnet_tf.models.iresnet import IResNet
from pocketnet_tf.models.mobilefacenet import MobileFaceNet
from pocketnet_tf.models.pocketnet import PocketNet


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    family: str  # "pocketnet" | "mobilefacenet" | "iresnet"
    description: str
    kwargs: dict
    #: Published/measured reference figures at 112x112 (spec §5.1), for the size report and tests.
    reference: dict | None = None


def _pocketnet(name, channels, cells, emb, params, flops):
    return Preset(
        name, "pocketnet",
        f"PocketNet{'S' if channels == 16 else 'M'}, C={channels}, {cells} cells, {emb}-d embedding, genotype softmax_casia",
        {"channels": channels, "num_cells": cells, "embedding_size": emb, "genotype": "softmax_casia"},
        {"trainable_params": params, "flops": flops},
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _pocketnet("PocketNetS-128", 16, 18, 128, 925_632, 587_110_016),
        _pocketnet("PocketNetS-256", 16, 18, 256, 991_424, 587_241_344),
        _pocketnet("PocketNetM-128", 32, 9, 128, 1_686_656, 1_099_024_384),
        _pocketnet("PocketNetM-256", 32, 9, 256, 1_752_448, 1_099_155_712),
        Preset("MobileFaceNet", "mobilefacenet", "MobileFaceNet baseline (Chen et al. 2018), 128-d embedding",
               {"embedding_size": 128}),
        Preset("iresnet18", "iresnet", "insightface iResNet-18 teacher, 512-d embedding",
               {"depth": 18, "embedding_size": 512}),
        Preset("iresnet34", "iresnet", "insightface iResNet-34 teacher, 512-d embedding",
               {"depth": 34, "embedding_size": 512}),
        Preset("iresnet50", "iresnet", "insightface iResNet-50 teacher, 512-d embedding",
               {"depth": 50, "embedding_size": 512}),
        Preset("iresnet100", "iresnet", "insightface iResNet-100 teacher, 512-d embedding (PocketNet's own teacher: 128-d)",
               {"depth": 100, "embedding_size": 512}),
    ]
}

_FAMILIES = {"pocketnet": PocketNet, "mobilefacenet": MobileFaceNet, "iresnet": IResNet}


def list_models() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; expected one of {list(PRESETS)}") from None


def build(name: str, genotype=None, embedding_size=None, input_size: int = 112, **overrides):
    """Builds a registered model as a functional ``keras.Model``.

    Args:
      name: a registry name (see :func:`list_models`).
      genotype: PocketNet only: a Genotype, published name, JSON/text or file path replacing
        ``softmax_casia`` (e.g. the output of a search run).
      embedding_size: replaces the preset's embedding size.
      input_size: square input side (112 in the paper).
      **overrides: further constructor arguments (e.g. ``channels``, ``num_cells`` for PocketNet,
        ``dropout`` for iResNet, ``name``).

    Returns:
      A model mapping ``(batch, input_size, input_size, 3)`` images in [-1, 1] to raw embeddings.
    """
    preset = get_preset(name)
    kwargs = dict(preset.kwargs)
    if genotype is not None:
        if preset.family != "pocketnet":
            raise ValueError(f"{name}: a genotype applies to PocketNet models only")
        kwargs["genotype"] = genotype
    if embedding_size is not None:
        kwargs["embedding_size"] = int(embedding_size)
    kwargs["input_size"] = int(input_size)
    kwargs.update(overrides)
    return _FAMILIES[preset.family](**kwargs)
