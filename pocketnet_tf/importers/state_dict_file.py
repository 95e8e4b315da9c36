"""Reading a PyTorch ``state_dict`` from disk without executing code from the file.

Two formats are accepted:

- ``.pth`` / ``.pt`` files written by ``torch.save`` (zip or legacy pickle). They are read with
  ``torch.load(path, map_location="cpu", weights_only=True)``: PyTorch's weights-only unpickler
  rebuilds tensors and plain containers and refuses every other global (a class instance, a
  callable such as ``os.system``) before anything runs. torch is imported only here, lazily.
- ``.safetensors`` files, parsed here with the standard library and numpy (an 8-byte
  little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
  the raw little-endian bytes). No pickle is involved and torch is not needed.

Training checkpoints of the original store ``backbone.module.state_dict()`` directly; other tools
wrap the dict (``{"state_dict": ...}``, ``{"model": ...}``) or keep DDP's ``module.`` prefix. Both
are unwrapped. The result is a ``dict[str, numpy.ndarray]``: floating tensors (including float16
and bfloat16) as float32, integer and bool tensors with their own dtype.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np

from pocketnet_tf.bounded import loads_json, read_bounded

#: Keys under which training scripts commonly nest the model's state_dict.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "backbone")
DDP_PREFIX = "module."

_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": None,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
#: Far above any face model's checkpoint (iResNet-100 is ~250 MB).
MAX_FILE_BYTES = 8 << 30


def load_state_dict(path) -> dict[str, np.ndarray]:
    """Reads a ``.pth``/``.pt`` or ``.safetensors`` file into ``{key: numpy array}``.

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError: the file is not a readable checkpoint, holds pickled objects other than tensors
        and plain containers, or does not contain a flat mapping of tensors. The message names the
        file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors" or _looks_like_safetensors(path):
        tensors = _read_safetensors(path)
    else:
        tensors = _read_torch(path)
    return _unwrap(tensors, path)


def _looks_like_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and not head.startswith(b"PK")


# ---------------------------------------------------------------------------------------------
# torch.save files


def _read_torch(path: Path):
    try:
        import torch
    except ImportError:
        raise ValueError(
            f"{path}: reading a PyTorch .pth file needs the torch package "
            "(CPU build: pip install torch==2.13.0), or convert the checkpoint to .safetensors"
        ) from None
    import pickle

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise ValueError(
                f"{path}: refused to load: the file contains pickled objects that are not tensors or "
                f"plain containers (it references {found.group(1)}). Only weights-only state_dicts "
                "are read; nothing from the file was executed."
            ) from None
        detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint (the weights-only unpickler stopped: "
            f"{detail.group(1).strip() if detail else 'invalid pickle data'}); nothing from the file was executed"
        ) from None
    except Exception as err:  # torch raises RuntimeError, KeyError, EOFError ... on corrupt files
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{path}: not a readable PyTorch checkpoint ({type(err).__name__}: {first_line})"
        ) from None
    return _to_numpy_tree(obj, torch, path, "")


def _to_numpy_tree(obj, torch, path: Path, where: str):
    """Tensors -> numpy; mappings are walked; anything else is kept for the error message."""
    if isinstance(obj, torch.Tensor):
        try:
            tensor = obj.detach().cpu()
            if tensor.is_floating_point():
                tensor = tensor.to(torch.float32)
            return tensor.numpy()
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"{path}: tensor {where!r} ({obj.dtype}, layout {obj.layout}) cannot be read as a dense array: {err}"
            ) from None
    if isinstance(obj, dict):
        return {k: _to_numpy_tree(v, torch, path, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------------------------
# safetensors files


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = read_bounded(path, MAX_FILE_BYTES, what="safetensors file")
    if len(data) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(_SAFETENSORS_MAX_HEADER, len(data) - 8):
        raise ValueError(f"{path}: not a safetensors file (header length {header_len} exceeds the file)")
    header = loads_json(data[8 : 8 + header_len], f"{path}: corrupt safetensors header")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: corrupt safetensors header (expected a JSON object)")
    buffer = memoryview(data)[8 + header_len :]
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        out[key] = _safetensors_tensor(path, key, info, buffer)
    return out


def _safetensors_tensor(path: Path, key: str, info, buffer) -> np.ndarray:
    try:
        dtype_name, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(type(v) is int for v in [*shape, start, end]):
            raise TypeError
        shape = tuple(shape)
    except (TypeError, KeyError, ValueError):
        raise ValueError(f"{path}: tensor {key!r}: malformed safetensors entry {str(info)[:200]}") from None
    if not isinstance(dtype_name, str) or dtype_name not in _SAFETENSORS_DTYPES:
        raise ValueError(
            f"{path}: tensor {key!r}: unsupported dtype {dtype_name!r}; expected one of "
            f"{sorted(_SAFETENSORS_DTYPES)}"
        )
    itemsize = 2 if dtype_name == "BF16" else np.dtype(_SAFETENSORS_DTYPES[dtype_name]).itemsize
    count = int(np.prod(shape, dtype=object))  # exact: an int64 product can wrap to a small number
    if len(shape) > 32 or any(d < 0 for d in shape) or not 0 <= start <= end <= len(buffer) or end - start != count * itemsize:
        raise ValueError(
            f"{path}: tensor {key!r}: byte range [{start}, {end}) does not fit shape {list(shape)} "
            f"of {dtype_name} in a {len(buffer)}-byte buffer"
        )
    raw = buffer[start:end]
    if dtype_name == "BF16":
        # bfloat16 is the upper half of a float32.
        array = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        array = np.frombuffer(raw, np.dtype(_SAFETENSORS_DTYPES[dtype_name]).newbyteorder("<"))
        array = array.astype(array.dtype.newbyteorder("="))
    array = array.reshape(shape)
    return array.astype(np.float32) if np.issubdtype(array.dtype, np.floating) else array.copy()


# ---------------------------------------------------------------------------------------------
# Unwrapping


def _unwrap(obj, path: Path) -> dict[str, np.ndarray]:
    for _ in range(3):
        if isinstance(obj, dict) and not _is_flat_tensor_dict(obj):
            nested = [k for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)]
            if nested:
                obj = obj[nested[0]]
                continue
        break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state_dict (a mapping of names to tensors), found {type(obj).__name__}")
    not_tensors = [f"{k} ({type(v).__name__})" for k, v in obj.items() if not isinstance(v, np.ndarray)]
    if not_tensors or not obj:
        detail = ", ".join(not_tensors[:10]) + (" ..." if len(not_tensors) > 10 else "")
        raise ValueError(
            f"{path}: expected a state_dict of tensors (optionally under one of {list(WRAPPER_KEYS)}); "
            + (f"these entries are not tensors: {detail}" if not_tensors else "the mapping is empty")
        )
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ValueError(f"{path}: state_dict key {key!r} is not a string")
        name = key[len(DDP_PREFIX) :] if key.startswith(DDP_PREFIX) else key
        if name in out:
            raise ValueError(f"{path}: key {name!r} appears both with and without the {DDP_PREFIX!r} prefix")
        out[name] = value
    return out


def _is_flat_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, np.ndarray) for v in obj.values())
