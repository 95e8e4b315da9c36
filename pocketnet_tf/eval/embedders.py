"""Backend-neutral face embedders: a Keras model, a SavedModel directory or a ``.tflite`` file.

Every embedder takes RGB NHWC pixels in 0..255 (uint8 or float) and returns float32 raw
(un-normalised) embeddings, running the model in batches. Pixel normalisation happens here, once:
``normalization=(mean, std)`` maps pixels to ``(x - mean) / std`` (default: the project's
``x / 127.5 - 1`` from :mod:`pocketnet_tf.data.preprocess`); ``normalization=None`` feeds raw
0..255 pixels to models that normalise inside the graph. For ``.tflite`` files the default is
read from the model's metadata when it states one (see :func:`normalization_from_metadata`).

Use :func:`load_embedder` to pick the backend from a path or an in-memory Keras model.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pocketnet_tf.data import preprocess

__all__ = [
    "DEFAULT_NORMALIZATION",
    "Embedder",
    "KerasEmbedder",
    "SavedModelEmbedder",
    "TFLiteEmbedder",
    "load_embedder",
    "normalization_from_metadata",
    "read_tflite_metadata",
]

#: ``(mean, std)`` of the network input: ``x / 127.5 - 1``.
DEFAULT_NORMALIZATION = (preprocess.MEAN, preprocess.STD)
_USE_METADATA = "metadata"


class Embedder:
    """Base class: batching, pixel normalisation, progress bar.

    Subclasses set ``backend``, ``source``, ``input_size`` (height, width) and implement
    ``_run(batch)`` on an already normalised (or raw, see ``normalization``) float32 batch.
    """

    backend = "base"

    def __init__(self, *, source: str, input_size, batch_size: int = 64, normalization=DEFAULT_NORMALIZATION):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.source = source
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.batch_size = int(batch_size)
        self.normalization = None if normalization is None else (float(normalization[0]), float(normalization[1]))

    def __repr__(self):
        return f"{type(self).__name__}({self.source!r})"

    def preprocess(self, pixels: np.ndarray) -> np.ndarray:
        """0..255 pixels -> model input (float32)."""
        if self.normalization is None:
            return np.asarray(pixels, dtype=np.float32)
        if self.normalization == DEFAULT_NORMALIZATION:
            return preprocess.normalize(pixels)
        mean, std = self.normalization
        return (np.asarray(pixels, dtype=np.float32) - np.float32(mean)) / np.float32(std)

    def _check_pixels(self, images) -> np.ndarray:
        images = np.asarray(images)
        expected = (*self.input_size, 3)
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"{self.source}: expected images of shape (N, {expected[0]}, {expected[1]}, 3), got {images.shape}"
            )
        return images

    def embed(self, images, *, progress: bool = False, desc: str | None = None) -> np.ndarray:
        """Embeds ``images`` (N, H, W, 3) pixels 0..255 in batches of ``batch_size``."""
        from tqdm.auto import tqdm

        images = self._check_pixels(images)
        outputs = []
        with tqdm(total=len(images), desc=desc or self.backend, unit="img", disable=not progress) as bar:
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                out = np.asarray(self._run(self.preprocess(chunk)), dtype=np.float32)
                if out.ndim != 2 or out.shape[0] != len(chunk):
                    raise ValueError(f"{self.source}: model returned shape {out.shape} for a batch of {len(chunk)}")
                outputs.append(out)
                bar.update(len(chunk))
        if not outputs:
            return np.zeros((0, self.embedding_size), dtype=np.float32)
        return np.concatenate(outputs)

    @property
    def embedding_size(self) -> int:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# Keras


def _register_custom_objects():
    # Loading a .keras file needs the package's layers registered; importing them does that.
    try:
        import pocketnet_tf.layers  # noqa: F401
        import pocketnet_tf.models  # noqa: F401
    except ImportError:
        pass


class KerasEmbedder(Embedder):
    """Runs a Keras model (in memory or loaded from a ``.keras`` file) in inference mode."""

    backend = "keras"

    def __init__(self, model, *, source: str | None = None, batch_size: int = 64,
                 normalization=DEFAULT_NORMALIZATION):
        import tensorflow as tf

        shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
        if shape is None or len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[2] is None:
            raise ValueError(f"{source or model.name}: expected a model with one (N, H, W, 3) input, got {shape}")
        if len(model.outputs) != 1:
            raise ValueError(f"{source or model.name}: expected one embedding output, got {len(model.outputs)}")
        super().__init__(source=source or f"<keras model {model.name}>", input_size=shape[1:3],
                         batch_size=batch_size, normalization=normalization)
        self.model = model
        self._embedding_size = int(model.outputs[0].shape[-1])
        spec = tf.TensorSpec((None, *shape[1:]), tf.float32)
        self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])

    @classmethod
    def from_file(cls, path, **kwargs):
        import keras

        _register_custom_objects()
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as err:  # Keras raises many types for a bad archive
            raise ValueError(f"{path}: cannot load Keras model ({type(err).__name__}: {err})") from None
        return cls(model, source=str(path), **kwargs)

    @property
    def embedding_size(self) -> int:
        return self._embedding_size

    def _run(self, batch):
        return self._fn(batch).numpy()


# ---------------------------------------------------------------------------------------------
# SavedModel


class SavedModelEmbedder(Embedder):
    """Runs the serving signature (one image-batch input -> one embedding output) of a SavedModel.

    A ``uint8`` signature input is taken to mean the graph normalises by itself: raw pixels are
    fed. A signature with a fixed batch of 1 is run image by image.
    """

    backend = "saved_model"

    def __init__(self, path, *, signature: str | None = None, batch_size: int = 64,
                 normalization=DEFAULT_NORMALIZATION):
        import tensorflow as tf

        path = Path(path)
        try:
            self._loaded = tf.saved_model.load(str(path))
        except Exception as err:
            raise ValueError(f"{path}: cannot load SavedModel ({type(err).__name__}: {err})") from None
        signatures = dict(self._loaded.signatures)
        if not signatures:
            raise ValueError(f"{path}: the SavedModel has no serving signature")
        key = signature or ("serving_default" if "serving_default" in signatures else sorted(signatures)[0])
        if key not in signatures:
            raise ValueError(f"{path}: no signature {key!r}; available: {sorted(signatures)}")
        self._fn = signatures[key]
        args, kwargs = self._fn.structured_input_signature
        specs = dict(kwargs)
        if args or len(specs) != 1:
            raise ValueError(f"{path}: signature {key!r} must take exactly one image input, got {specs or args}")
        (self._input_name, spec), = specs.items()
        shape = spec.shape.as_list()
        if len(shape) != 4 or shape[3] != 3 or shape[1] is None or shape[2] is None:
            raise ValueError(f"{path}: signature input {self._input_name!r} has shape {shape}; expected (N, H, W, 3)")
        self._input_dtype = spec.dtype
        self._fixed_batch = shape[0]
        outputs = self._fn.structured_outputs
        if len(outputs) != 1:
            if "embedding" not in outputs:
                raise ValueError(f"{path}: signature {key!r} has outputs {sorted(outputs)}; expected one embedding")
            self._output_name = "embedding"
        else:
            (self._output_name,) = outputs
        self._embedding_size = int(outputs[self._output_name].shape[-1])
        if spec.dtype == tf.uint8:
            normalization = None
        super().__init__(source=str(path), input_size=shape[1:3], batch_size=batch_size, normalization=normalization)

    @property
    def embedding_size(self) -> int:
        return self._embedding_size

    def _call(self, batch):
        import tensorflow as tf

        x = tf.constant(np.round(batch).astype(np.uint8) if self._input_dtype == tf.uint8 else batch,
                        dtype=self._input_dtype)
        return self._fn(**{self._input_name: x})[self._output_name].numpy()

    def _run(self, batch):
        if self._fixed_batch is None or self._fixed_batch == len(batch):
            return self._call(batch)
        if self._fixed_batch != 1:
            raise ValueError(f"{self.source}: signature has a fixed batch of {self._fixed_batch}; "
                             "only 1 or dynamic supported")
        return np.concatenate([self._call(batch[i : i + 1]) for i in range(len(batch))])


# ---------------------------------------------------------------------------------------------
# TFLite


def read_tflite_metadata(path) -> dict:
    """JSON metadata of a ``.tflite`` model: every model-metadata entry whose buffer is a JSON
    object (by entry name), plus a side-car ``<model>.json`` next to the file (key ``"sidecar"``)
    and a bundle ``metadata.json`` in the same directory whose ``model.file`` names this file
    (key ``"bundle"``)."""
    from pocketnet_tf.export.metadata import read_metadata_entries

    path = Path(path)
    found = read_metadata_entries(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        value = _read_json(sidecar)
        if isinstance(value, dict):
            found["sidecar"] = value
    bundle = path.parent / "metadata.json"
    if bundle.is_file():
        value = _read_json(bundle)
        # A deployment bundle's metadata.json applies only to the model file it names.
        if isinstance(value, dict) and isinstance(value.get("model"), dict) and value["model"].get("file") == path.name:
            found["bundle"] = value
    return found


def _read_json(path: Path):
    from pocketnet_tf.bounded import loads_json, read_bounded

    return loads_json(read_bounded(path, 1 << 20, what="metadata JSON file"), str(path))


def normalization_from_metadata(metadata: dict):
    """Finds the input normalisation a model's metadata states, or ``DEFAULT_NORMALIZATION``.

    Recognised (in any metadata entry, at top level or under ``"input"``):
    ``"normalization": {"mean": m, "std": s}`` (scalars or per-channel lists with equal values),
    or ``"input_range": [0, 255]`` meaning raw pixels (returns ``None``). ``mean == 0`` and
    ``std == 1`` also mean raw pixels.
    """
    for entry in metadata.values():
        for scope in (entry, entry.get("input") if isinstance(entry.get("input"), dict) else {}):
            norm = scope.get("normalization")
            if isinstance(norm, dict) and "mean" in norm and "std" in norm:
                mean = np.unique(np.asarray(norm["mean"], dtype=np.float64))
                std = np.unique(np.asarray(norm["std"], dtype=np.float64))
                if mean.size != 1 or std.size != 1:
                    raise ValueError(f"per-channel normalisation {norm} is not supported (channels differ)")
                if mean[0] == 0.0 and std[0] == 1.0:
                    return None
                return (float(mean[0]), float(std[0]))
            rng = scope.get("input_range")
            if isinstance(rng, (list, tuple)) and [float(v) for v in rng] == [0.0, 255.0]:
                return None
    return DEFAULT_NORMALIZATION


class TFLiteEmbedder(Embedder):
    """Runs a ``.tflite`` model with the one LiteRT runner (:class:`pocketnet_tf.export.runtime.TFLiteRunner`).

    Dynamic-batch models are resized to the batch at hand; static batch-1 models are run image by
    image. An int8/uint8 input is quantised with the tensor's ``(scale, zero_point)`` (a uint8 input
    without quantisation parameters is fed raw pixels); an int8/uint8 output is dequantised.
    """

    backend = "tflite"

    def __init__(self, path, *, batch_size: int = 64, normalization=_USE_METADATA, num_threads: int | None = None):
        from pocketnet_tf.export.runtime import TFLiteRunner

        path = Path(path)
        self.metadata = read_tflite_metadata(path)
        self.runner = TFLiteRunner(path, num_threads=num_threads)
        signature = self.runner.signature
        if len(signature) != 4 or signature[3] != 3:
            raise ValueError(f"{path}: input shape {signature}; expected (N, H, W, 3)")
        if not self.runner.dynamic and signature[0] != 1:
            raise ValueError(f"{path}: static batch {signature[0]} not supported; export batch 1 or dynamic")
        self.raw_uint8_input = self.runner.raw_uint8_input
        if normalization == _USE_METADATA:
            normalization = normalization_from_metadata(self.metadata)
        if self.raw_uint8_input:
            normalization = None
        self._embedding_size = int(self.runner.output["shape"][-1])
        super().__init__(source=str(path), input_size=signature[1:3], batch_size=batch_size,
                         normalization=normalization)

    @property
    def embedding_size(self) -> int:
        return self._embedding_size

    def _run(self, batch):
        return self.runner.run(batch)


# ---------------------------------------------------------------------------------------------


def load_embedder(path_or_model, **kwargs) -> Embedder:
    """Embedder for a Keras model object, a ``.keras`` file, a SavedModel directory or a ``.tflite``.

    Keyword arguments go to the embedder (``batch_size``, ``normalization``; ``num_threads`` for
    TFLite; ``signature`` for SavedModel).

    Raises:
      FileNotFoundError: the path does not exist.
      ValueError: the path is not one of the supported kinds or cannot be loaded (names the path).
    """
    try:
        import keras

        if isinstance(path_or_model, keras.Model):
            return KerasEmbedder(path_or_model, **kwargs)
    except ImportError:  # pragma: no cover - keras is a dependency
        pass
    if isinstance(path_or_model, Embedder):
        return path_or_model
    path = Path(os.fspath(path_or_model))
    if not path.exists():
        raise FileNotFoundError(f"{path}: model not found")
    if path.is_dir():
        if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file():
            return SavedModelEmbedder(path, **kwargs)
        raise ValueError(f"{path}: directory is not a SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    if suffix == ".keras":
        return KerasEmbedder.from_file(path, **kwargs)
    if suffix == ".tflite":
        return TFLiteEmbedder(path, **kwargs)
    raise ValueError(f"{path}: unsupported model file; expected a .keras file, a SavedModel directory or a .tflite")
