"""Helpers shared by the importer tests (torch is the ``torch`` test extra)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
KEYS_TSV = DATA / "pocketnetS128_state_dict_keys.tsv"
#: The spec's full dump, when the repository is checked out beside ``shared/``.
SPEC_TSV = Path(__file__).resolve().parents[3] / "shared" / "spec" / "pocketnetS128_state_dict.tsv"

#: Inference-mode agreement required between the Keras import and the PyTorch reference.
ATOL = 1e-4

#: Exercises every primitive, both strides, a stride-2 skip (FactorizedReduce edge), a node with
#: three inputs, a node with one, and a reduction cell that concatenates only three nodes.
ALL_PRIMITIVES_GENOTYPE = {
    "normal": [
        [["avg_pool_3x3", 0], ["max_pool_3x3", 1]],
        [["skip_connect", 0], ["dw_conv_7x7", 2]],
        [["dw_conv_1x1", 1], ["avg_pool_3x3", 3], ["dw_conv_3x3", 0]],
        [["dw_conv_5x5", 4], ["skip_connect", 2]],
    ],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [
        [["avg_pool_3x3", 0], ["skip_connect", 1]],
        [["max_pool_3x3", 1], ["dw_conv_3x3", 0]],
        [["dw_conv_5x5", 1], ["avg_pool_3x3", 3]],
        [["dw_conv_7x7", 1]],
    ],
    "reduce_concat": [2, 4, 5],
}


def read_key_table(path=KEYS_TSV) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, dtype)}`` from a tab-separated key dump (comment lines start with #)."""
    table = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")[:3]
        dims = shape.strip("[]").replace(" ", "")
        table[key] = (tuple(int(d) for d in dims.split(",")) if dims else (), dtype)
    return table


def torch_state_dict(module) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()}


def write_safetensors(path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> None:
    """Writes the safetensors layout: u64 header length, JSON header, concatenated raw data.

    ``tensors`` maps a name to ``(dtype code, shape, little-endian bytes)``.
    """
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
