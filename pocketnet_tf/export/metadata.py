"""Model metadata: a JSON side-car (the source of truth) and the same JSON inside the ``.tflite``.

The side-car ``metadata.json`` states everything an app needs to use the model (see
``tflite/README.md`` for the schema). The copy embedded in the flatbuffer (a custom metadata
entry named :data:`METADATA_NAME`, written with ``ai_edge_litert.tools.flatbuffer_utils``) is
identical except ``model.sha256`` and ``model.size_bytes``, which cannot describe the file that
contains them and are ``null`` there (:func:`embedded_view`).

Normalisation and the alignment template come from :mod:`pocketnet_tf.data.preprocess`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np

from pocketnet_tf.bounded import loads_json, read_bounded
from pocketnet_tf.data import preprocess

__all__ = [
    "METADATA_NAME", "SCHEMA", "build_metadata", "embed_metadata", "read_embedded_metadata", "sha256_file",
    "embedded_view", "read_metadata_entries",
]

METADATA_NAME = "pocketnet_tf"
SCHEMA = "pocketnet_tf.tflite_metadata/1"


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _tensor_info(detail) -> dict:
    scale, zero = detail["quantization"]
    return {
        "name": detail["name"],
        "shape": [int(d) for d in detail.get("shape_signature", detail["shape"])],
        "dtype": np.dtype(detail["dtype"]).name,
        "quantization": None if scale == 0 else {"scale": float(scale), "zero_point": int(zero)},
    }


def build_metadata(
    *,
    tflite_bytes: bytes,
    model_name: str,
    mode: str,
    backend: str,
    export_info: dict,
    embedding_size: int,
    quantization: dict,
    threshold: dict | None,
    file_name: str = "model.tflite",
) -> dict:
    """The side-car metadata for a converted model (``model.sha256`` filled in by the caller)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite_bytes)
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    raw = bool(export_info["raw_input"])
    in_info = _tensor_info(inp)
    height, width = in_info["shape"][1], in_info["shape"][2]
    in_info.update(
        {
            "layout": "NHWC",
            "color": "RGB",
            "height": height,
            "width": width,
            "batch": "dynamic" if in_info["shape"][0] == -1 else in_info["shape"][0],
            # What the app feeds: x_in = (pixel - mean) / std per channel.
            "normalization": {"mean": 0.0, "std": 1.0} if raw else {"mean": preprocess.MEAN, "std": preprocess.STD},
            "input_range": [0.0, 255.0] if raw else [-1.0, 1.0],
            "normalization_in_graph": {"mean": preprocess.MEAN, "std": preprocess.STD} if raw else None,
        }
    )
    out_info = _tensor_info(out)
    out_info.update({"embedding_size": int(embedding_size), "l2_normalized": bool(export_info["l2_normalized"])})
    template = preprocess.ARCFACE_TEMPLATE_112 * (height / preprocess.IMAGE_SIZE)
    return {
        "schema": SCHEMA,
        "model": {
            "file": file_name,
            "sha256": None,
            "name": model_name,
            "mode": mode,
            "backend": backend,
            "size_bytes": None,
            "prelu_rewrite": export_info["prelu_rewrite"],
        },
        "input": in_info,
        "output": out_info,
        "quantization": quantization,
        "alignment": {
            "landmarks": ["left_eye", "right_eye", "nose_tip", "left_mouth_corner", "right_mouth_corner"],
            "template": [[round(float(v), 4) for v in row] for row in template],
            "transform": "similarity (rotation, uniform scale, translation), least squares",
            "output_size": [height, width],
            "border": "constant 0",
        },
        "verification": threshold,
    }


def embedded_view(metadata: dict) -> dict:
    """The side-car as stored inside the model: identical, with ``model.sha256`` and
    ``model.size_bytes`` set to ``None`` and without the ``bundle`` seal (the manifest's hash
    covers the model, so the model cannot hold it)."""
    view = copy.deepcopy({k: v for k, v in metadata.items() if k != "bundle"})
    view["model"]["sha256"] = None
    view["model"]["size_bytes"] = None
    return view


def embed_metadata(tflite_bytes: bytes, metadata: dict) -> bytes:
    """Returns the model with ``embedded_view(metadata)`` appended as metadata :data:`METADATA_NAME`
    (an existing entry of that name is replaced)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    payload = json.dumps(embedded_view(metadata), sort_keys=True).encode("utf-8")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


#: A flatbuffer cannot exceed 2 GiB; a converted model has a handful of metadata entries.
MAX_TFLITE_BYTES = 2 << 30
MAX_METADATA_ENTRIES = 1024


def read_metadata_entries(path_or_bytes) -> dict[str, dict]:
    """Every model-metadata entry of a ``.tflite`` (file or bytes) whose buffer is a JSON object,
    by entry name: the one reader of embedded metadata (export, evaluation, verification).

    Raises:
      ValueError: naming the file, if it is not a readable flatbuffer model.
    """
    from ai_edge_litert import schema_py_generated as schema

    if isinstance(path_or_bytes, (str, Path)):
        source = str(path_or_bytes)
        data = read_bounded(path_or_bytes, MAX_TFLITE_BYTES, what=".tflite model")
    else:
        source, data = "<tflite bytes>", bytes(path_or_bytes)
    found = {}
    try:
        model = schema.Model.GetRootAs(data, 0)
        if model.MetadataLength() > MAX_METADATA_ENTRIES:
            raise ValueError(f"{model.MetadataLength()} metadata entries (at most {MAX_METADATA_ENTRIES})")
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            buf = model.Buffers(entry.Buffer())
            raw = buf.DataAsNumpy() if buf is not None and not buf.DataIsNone() else None
            if raw is None or isinstance(raw, int):
                continue
            try:
                value = loads_json(bytes(raw), source)
            except ValueError:
                continue  # not a JSON entry (e.g. a runtime's own binary metadata)
            if isinstance(value, dict):
                found[_name(entry.Name() or b"")] = value
    except Exception as err:
        raise ValueError(f"{source}: not a readable .tflite model ({type(err).__name__}: {err})") from None
    return found


def read_embedded_metadata(path_or_bytes) -> dict:
    """The JSON object stored under :data:`METADATA_NAME` in a ``.tflite`` file or bytes.

    Raises:
      ValueError: not a flatbuffer model, or no such entry holding a JSON object.
    """
    entries = read_metadata_entries(path_or_bytes)
    if METADATA_NAME not in entries:
        source = str(path_or_bytes) if isinstance(path_or_bytes, (str, Path)) else "<tflite bytes>"
        raise ValueError(f"{source}: no {METADATA_NAME!r} metadata entry holding a JSON object")
    return entries[METADATA_NAME]


def quantization_summary(tflite_bytes: bytes, mode: str) -> dict:
    """Tensor-type counts and the input/output quantisation of a model."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(tflite_bytes, 0)
    graph = model.Subgraphs(0)
    counts: dict[str, int] = {}
    for i in range(graph.TensorsLength()):
        name = names.get(graph.Tensors(i).Type(), "?")
        counts[name] = counts.get(name, 0) + 1
    activations = {"fp32": "float32", "fp16": "float32", "dynamic": "float32 (int8 on the fly)",
                   "int8": "int8", "int16x8": "int16"}[mode]
    weights = {"fp32": "float32", "fp16": "float16", "dynamic": "int8", "int8": "int8", "int16x8": "int8"}[mode]
    return {"weights": weights, "activations": activations, "tensor_types": dict(sorted(counts.items()))}
