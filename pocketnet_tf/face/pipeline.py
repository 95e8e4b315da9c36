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
    ``BundleMetadata`` checks them (by :mod:`pocketnet_tf.export.seal`)."""

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


def read_bundle_metadata(bundle_dir, *, check_sha256: bool = True) -> BundleMetadata:
    """Opens a bundle as the app's ``VerificationBundle`` does: the one bundle validator
    (:func:`pocketnet_tf.export.seal.open_bundle` with the app's limits) checks ``metadata.json``
    and, with ``check_sha256``, the seal (every file's size and SHA-256, no symlinks).

    Raises:
      BundleError: (a ValueError) naming the file and the problem.
    """
    from pocketnet_tf.export import seal

    bundle_dir = Path(bundle_dir)
    path = bundle_dir / METADATA_FILE
    if check_sha256:
        meta = seal.open_bundle(bundle_dir, app=True).metadata
    else:
        meta = seal.read_json(path)
        seal.check_metadata(meta, path, app=True)
    model, inp, out = meta["model"], meta["input"], meta["output"]
    verification = meta["verification"] or {}
    return BundleMetadata(
        path=path,
        raw=meta,
        model_file=model["file"],
        model_sha256=model["sha256"],
        mode=model["mode"],
        input_size=(int(inp["shape"][1]), int(inp["shape"][2])),
        norm_mean=float(inp["normalization"]["mean"]),
        norm_std=float(inp["normalization"]["std"]),
        embedding_size=int(out["embedding_size"]),
        l2_normalized=bool(out["l2_normalized"]),
        template=np.asarray(meta["alignment"]["template"], dtype=np.float64),
        threshold=float(verification["threshold"]) if verification else None,
        far_target=float(verification["far_target"]) if verification else None,
    )


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
