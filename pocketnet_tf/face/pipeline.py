"""The desktop twin of the Android demo: photos -> BlazeFace -> aligned crops -> bundle model -> gallery.

Every step is the one the app runs (``android_demo/core``), with the same arithmetic:

* detection and alignment: :mod:`pocketnet_tf.face.detect` (BlazeFace keypoints, 4-point fit to
  the bundle's 5-point template) and :mod:`pocketnet_tf.data.align` (the exactly specified warp);
* bundle: ``metadata.json`` of ``python -m pocketnet_tf.convert`` (``tflite/README.md``), checked
  as the Java ``BundleMetadata`` checks it; model input (:class:`BundleEmbedder`) by the
  converter's own ``pocketnet_tf.export.bundle.model_input`` (float32 ``(pixel - mean) / std``),
  which the Java ``Preprocessor`` reproduces;
* gallery: :mod:`pocketnet_tf.face.gallery` (same file format and scores as the app).

The command line is ``python -m pocketnet_tf.align`` (see :mod:`pocketnet_tf.face.commands`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from pocketnet_tf.face import detect
from pocketnet_tf.face.gallery import Gallery, Match

__all__ = [
    "BundleEmbedder",
    "BundleMetadata",
    "FaceCrop",
    "IMAGE_SUFFIXES",
    "find_faces",
    "list_images",
    "read_bundle_metadata",
    "read_photo",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
METADATA_FILE = "metadata.json"


# ------------------------------------------------------------------------------------- photos


def list_images(inputs) -> list[Path]:
    """Expands files and directories (non-recursive, sorted, image suffixes only) into files.

    Raises:
      FileNotFoundError: an input does not exist.
      ValueError: a directory holds no image.
    """
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ValueError(f"{path}: no {'/'.join(IMAGE_SUFFIXES)} images in this directory")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return out


def read_photo(path) -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, upright (EXIF orientation applied, as the app does)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.uint8).copy()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot decode image ({err})") from None


@dataclasses.dataclass
class FaceCrop:
    """One detected face: its detection (image pixels), the aligned crop and the 2x3 matrix."""

    detection: detect.Detection
    crop: np.ndarray
    matrix: np.ndarray


def find_faces(image: np.ndarray, detector: detect.BlazeFaceDetector, template, size: tuple[int, int]
               ) -> list[FaceCrop]:
    """Every face in ``image``, best score first, aligned to ``template`` at ``size`` (h, w)."""
    out = []
    for d in detector.detect(image):
        if size[0] != size[1]:
            raise ValueError(f"only square crops are supported, got {size}")
        crop, matrix = detect.align_from_keypoints(image, d.keypoints, template=template, size=size[0])
        out.append(FaceCrop(d, crop, matrix))
    return out


# ------------------------------------------------------------------------------------- bundle


@dataclasses.dataclass(frozen=True)
class BundleMetadata:
    """The fields of a bundle's ``metadata.json`` (schema ``pocketnet_tf.tflite_metadata/1``, see
    ``tflite/README.md``) that the app and the twin use, checked on load as the Java
    ``BundleMetadata`` checks them."""

    path: Path
    raw: dict
    model_file: str
    model_sha256: str
    mode: str
    input_size: tuple[int, int]  # (height, width)
    norm_mean: float
    norm_std: float
    embedding_size: int
    l2_normalized: bool
    template: np.ndarray
    threshold: float | None  # None: exported without a verification set
    far_target: float | None


def _field(obj, key, kind, where, path, *, nullable=False):
    if not isinstance(obj, dict) or key not in obj or (obj[key] is None and not nullable):
        raise ValueError(f"{path}: missing field '{where}{key}'")
    value = obj[key]
    if value is None:
        return None
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "num": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "obj": isinstance(value, dict),
        "list": isinstance(value, list),
    }[kind]
    if not ok:
        raise ValueError(f"{path}: field '{where}{key}' has the wrong type ({type(value).__name__})")
    return value


def _float_tensor(tensor, where, path):
    if _field(tensor, "dtype", "str", where, path) != "float32":
        raise ValueError(f"{path}: field '{where}dtype' must be 'float32', got {tensor['dtype']!r}")
    if _field(tensor, "quantization", "obj", where, path, nullable=True) is not None:
        raise ValueError(f"{path}: field '{where}quantization' must be null: the app feeds and reads float32 "
                         "tensors only")


def read_bundle_metadata(bundle_dir, *, check_sha256: bool = True) -> BundleMetadata:
    """Parses and checks ``<bundle_dir>/metadata.json`` (and the model's SHA-256).

    Raises:
      FileNotFoundError: metadata or model file missing.
      ValueError: invalid metadata or a model whose SHA-256 differs from the stated one.
    """
    from pocketnet_tf.export.metadata import SCHEMA

    bundle_dir = Path(bundle_dir)
    path = bundle_dir / METADATA_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: bundle metadata not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from None
    if _field(meta, "schema", "str", "", path) != SCHEMA:
        raise ValueError(f"{path}: field 'schema' is {meta['schema']!r}; expected {SCHEMA!r}")
    model = _field(meta, "model", "obj", "", path)
    model_file = _field(model, "file", "str", "model.", path)
    if not model_file or Path(model_file).name != model_file or model_file.startswith("."):
        raise ValueError(f"{path}: field 'model.file' must be a plain file name, got {model_file!r}")
    sha = _field(model, "sha256", "str", "model.", path).lower()
    inp = _field(meta, "input", "obj", "", path)
    shape = _field(inp, "shape", "list", "input.", path)
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or _field(inp, "layout", "str", "input.", path) != "NHWC":
        raise ValueError(f"{path}: input must be NHWC [1, H, W, 3] (static batch 1; export without "
                         f"--dynamic_batch), got {shape} {inp.get('layout')}")
    if _field(inp, "color", "str", "input.", path) != "RGB":
        raise ValueError(f"{path}: field 'input.color' must be 'RGB'")
    _float_tensor(inp, "input.", path)
    norm = _field(inp, "normalization", "obj", "input.", path)
    std = float(_field(norm, "std", "num", "input.normalization.", path))
    if not 0.0 < std < float("inf"):
        raise ValueError(f"{path}: field 'input.normalization.std' must be a positive number, got {std}")
    out = _field(meta, "output", "obj", "", path)
    _float_tensor(out, "output.", path)
    embedding_size = int(_field(out, "embedding_size", "int", "output.", path))
    if embedding_size <= 0 or list(_field(out, "shape", "list", "output.", path)) != [1, embedding_size]:
        raise ValueError(f"{path}: output.embedding_size must be positive and match output.shape [1, D]")
    alignment = _field(meta, "alignment", "obj", "", path)
    template = np.asarray(_field(alignment, "template", "list", "alignment.", path), dtype=np.float64)
    if template.shape != (5, 2):
        raise ValueError(f"{path}: field 'alignment.template' must be 5 (x, y) points, got shape {template.shape}")
    if list(_field(alignment, "output_size", "list", "alignment.", path)) != [shape[1], shape[2]]:
        raise ValueError(f"{path}: alignment.output_size must equal the model input size {shape[1:3]}")
    ver = _field(meta, "verification", "obj", "", path, nullable=True)
    threshold = far = None
    if ver is not None:
        if _field(ver, "metric", "str", "verification.", path) != "cosine":
            raise ValueError(f"{path}: field 'verification.metric' must be 'cosine'")
        threshold = float(_field(ver, "threshold", "num", "verification.", path))
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"{path}: verification.threshold must be a cosine in [-1, 1], got {threshold}")
        far = float(_field(ver, "far_target", "num", "verification.", path))
    result = BundleMetadata(
        path=path,
        raw=meta,
        model_file=model_file,
        model_sha256=sha,
        mode=_field(model, "mode", "str", "model.", path),
        input_size=(int(shape[1]), int(shape[2])),
        norm_mean=float(_field(norm, "mean", "num", "input.normalization.", path)),
        norm_std=std,
        embedding_size=embedding_size,
        l2_normalized=bool(_field(out, "l2_normalized", "bool", "output.", path)),
        template=template,
        threshold=threshold,
        far_target=far,
    )
    model_path = bundle_dir / model_file
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: model file named in {path} not found")
    if check_sha256:
        actual = hashlib.sha256(model_path.read_bytes()).hexdigest()
        if actual != sha:
            raise ValueError(f"{model_path}: SHA-256 {actual} does not match {sha} in {path} (corrupt or replaced model)")
    return result


class BundleEmbedder:
    """Runs a bundle's ``.tflite`` with the one LiteRT runner on aligned uint8 crops, preprocessing
    exactly as the app's Java ``Preprocessor``."""

    def __init__(self, bundle_dir, *, num_threads: int = 1):
        from pocketnet_tf.export.runtime import TFLiteRunner

        self.bundle_dir = Path(bundle_dir)
        self.meta = read_bundle_metadata(self.bundle_dir)
        model_path = self.bundle_dir / self.meta.model_file
        self._runner = TFLiteRunner(model_path, num_threads=num_threads, what="model")
        h, w = self.meta.input_size
        shape, dtype = list(self._runner.input["shape"]), self._runner.input_dtype
        if shape != [1, h, w, 3] or dtype != np.float32:
            raise ValueError(f"{model_path}: input {shape} {dtype} disagrees with {self.meta.path} "
                             f"([1, {h}, {w}, 3] float32)")

    def input_tensor(self, crop: np.ndarray) -> np.ndarray:
        """(1, H, W, 3) float32 model input for an aligned uint8 crop: the converter's own
        :func:`pocketnet_tf.export.bundle.model_input`, which wrote the bundle's golden inputs."""
        from pocketnet_tf.export.bundle import model_input

        crop = np.asarray(crop)
        if crop.shape != (*self.meta.input_size, 3) or crop.dtype != np.uint8:
            raise ValueError(f"expected a uint8 crop of shape {(*self.meta.input_size, 3)}, got {crop.shape} {crop.dtype}")
        return model_input(crop[None], self.meta.raw).astype(np.float32)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The model's float32 output for a prepared input."""
        out = self._runner.run(tensor)[0].reshape(-1)
        if out.size != self.meta.embedding_size:
            raise ValueError(f"model returned {out.size} values, {self.meta.path} declares {self.meta.embedding_size}")
        return out.astype(np.float32)

    def embed(self, crop: np.ndarray) -> np.ndarray:
        return self.run(self.input_tensor(crop))

    def new_gallery(self) -> Gallery:
        return Gallery(self.meta.model_sha256, self.meta.embedding_size)

    def search(self, gallery: Gallery, embedding) -> Match:
        if self.meta.threshold is None:
            raise ValueError(f"{self.meta.path}: 'verification' is null, so the bundle states no decision threshold; "
                             "export it with --bin=<verification set>")
        return gallery.search(embedding, self.meta.threshold)
