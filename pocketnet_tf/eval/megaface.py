"""MegaFace challenge 1: feature export in the devkit's binary format and noise-list refinement.

Feature file (one per image, named ``<image file name>_<algo>.bin`` beside the image's relative
path under the output root): a 16-byte header of four little-endian int32 -- rows (the feature
length), cols (1), element size in bytes (4), OpenCV type code (5 = CV_32F) -- followed by
``rows`` float32 values. The feature is ``L2-normalise(e(image) + e(mirror))`` (spec §7.3).

Refinement ("MegaFace(R)", with insightface's ``facescrub_noises.txt`` / ``megaface_noises.txt``):
every feature gets one extra dimension; clean images get 0 there; a FaceScrub image on the noise
list is replaced by ``L2-normalise(sum of its identity's clean features + U(-0.001, 0.001))`` (extra
value 0); a MegaFace distractor on the noise list keeps its feature and gets 100 in the extra
dimension, which pushes it away from every probe. The official devkit then scores the feature
directories; see docs/evaluation.md for the commands.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path, PurePosixPath

import numpy as np

from pocketnet_tf.io_utils import atomic_path

__all__ = [
    "CV_32F",
    "export_features",
    "feature_path",
    "read_feature_file",
    "read_image_list",
    "read_noise_list",
    "refine_features",
    "write_feature_file",
]

#: OpenCV type code of a float32 single-channel matrix.
CV_32F = 5
_HEADER = struct.Struct("<4i")


def write_feature_file(path, feature) -> None:
    """Writes one feature vector in the devkit format (atomic rename; no fsync, for 1M files)."""
    feature = np.asarray(feature, dtype="<f4").reshape(-1)
    data = _HEADER.pack(feature.size, 1, 4, CV_32F) + feature.tobytes()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def read_feature_file(path) -> np.ndarray:
    """Reads a devkit feature file; checks the header and the length.

    Raises:
      FileNotFoundError / ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file not found")
    data = path.read_bytes()
    if len(data) < _HEADER.size:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than the 16-byte header")
    rows, cols, size, kind = _HEADER.unpack_from(data)
    if cols != 1 or size != 4 or kind != CV_32F or rows < 1:
        raise ValueError(f"{path}: header (rows, cols, elem size, type) = {(rows, cols, size, kind)}; "
                         "expected (n, 1, 4, 5)")
    if len(data) != _HEADER.size + 4 * rows:
        raise ValueError(f"{path}: {len(data)} bytes for {rows} floats; expected {_HEADER.size + 4 * rows}")
    return np.frombuffer(data, dtype="<f4", offset=_HEADER.size).astype(np.float32)


def _checked_relative(entry: str, source) -> str:
    rel = PurePosixPath(entry.strip().replace("\\", "/"))
    if not entry.strip() or rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"{source}: image entry {entry!r} must be a relative path inside the image root")
    return str(rel)


def read_image_list(path) -> list[str]:
    """Relative image paths from a text list (one a line, ``#`` comments) or a devkit JSON list
    (``{"path": [...]}``, e.g. ``facescrub_features_list.json``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image list not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from None
        entries = obj.get("path") if isinstance(obj, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError(f"{path}: JSON list must have a 'path' list of strings")
    else:
        entries = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise ValueError(f"{path}: no images listed")
    return [_checked_relative(e, path) for e in entries]


def read_noise_list(path) -> set[str]:
    """Entries of a noise list (blank lines and ``#`` lines skipped), as given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: noise list not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def _is_listed(rel: str, noises: set[str]) -> bool:
    # Lists name images by relative path or by bare file name; accept either.
    return rel in noises or PurePosixPath(rel).name in noises


def feature_path(out_root, rel: str, algo: str) -> Path:
    """``<out_root>/<dir of rel>/<file name of rel>_<algo>.bin``."""
    rel_path = PurePosixPath(rel)
    return Path(out_root, *rel_path.parent.parts, f"{rel_path.name}_{algo}.bin")


def export_features(embedder, image_root, images, out_root, *, algo: str, batch_size: int = 64,
                    skip_existing: bool = False, progress: bool = False) -> int:
    """Embeds every listed image (pre-aligned 112x112) and writes its devkit feature file.

    Args:
      embedder: a :class:`pocketnet_tf.eval.embedders.Embedder`.
      image_root: directory the list's relative paths refer to.
      images: a list file (see :func:`read_image_list`) or a list of relative paths.
      out_root: output directory (the layout under it mirrors the image list).
      algo: the feature-file suffix, e.g. ``pocketnets128``.
      skip_existing: do not recompute images whose feature file exists (resume a long run).

    Returns:
      The number of feature files written.
    """
    from pocketnet_tf.data.preprocess import decode_image
    from pocketnet_tf.eval.verification import embed_with_flip, flip_test_embeddings

    if not algo or any(c in algo for c in "/\\") or algo.startswith("."):
        raise ValueError(f"algo must be a plain name, got {algo!r}")
    rels = _listed_images(images)
    if skip_existing:
        rels = [r for r in rels if not feature_path(out_root, r, algo).is_file()]
    image_root = Path(image_root)
    from tqdm.auto import tqdm

    written = 0
    # Embed chunk by chunk so that a 1M-image run keeps only one chunk of features in memory.
    chunk = max(batch_size, 4096)
    with tqdm(total=len(rels), desc=f"features {algo}", unit="img", disable=not progress) as bar:
        for start in range(0, len(rels), chunk):
            part = rels[start : start + chunk]
            e_orig, e_flip = embed_with_flip(embedder, _pixel_batches(image_root, part, batch_size, decode_image))
            feats = flip_test_embeddings(e_orig, e_flip).astype(np.float32)
            for rel, feat in zip(part, feats):
                write_feature_file(feature_path(out_root, rel, algo), feat)
                written += 1
            bar.update(len(part))
    return written


def _pixel_batches(image_root: Path, rels, batch_size: int, decode_image):
    for start in range(0, len(rels), batch_size):
        pixels = []
        for rel in rels[start : start + batch_size]:
            file = image_root / rel
            try:
                data = file.read_bytes()
            except FileNotFoundError:
                raise FileNotFoundError(f"{file}: listed image not found") from None
            pixels.append(decode_image(data, source=str(file)))
        yield np.stack(pixels)


def refine_features(*, facescrub_images, megaface_images, facescrub_features, megaface_features,
                    facescrub_noises, megaface_noises, algo: str, facescrub_out, megaface_out,
                    seed: int = 0) -> dict:
    """Writes the refined (noise-corrected, emb+1 dimensional) copies of both feature sets.

    Args:
      facescrub_images / megaface_images: image lists (files or lists of relative paths) of the
        exported features; a FaceScrub image's identity is its directory name
        (``<identity>/<image>``).
      facescrub_features / megaface_features: roots the features were exported to.
      facescrub_noises / megaface_noises: insightface noise lists (entries are relative paths or
        bare image file names).
      facescrub_out / megaface_out: output roots (same layout and suffix).
      seed: seed of the U(-0.001, 0.001) perturbation.

    Returns:
      Counts: images per set, noisy images found per set, and noisy FaceScrub images whose
      identity has no clean image (they keep their own feature).
    """
    fs_rels, mf_rels = _listed_images(facescrub_images), _listed_images(megaface_images)
    fs_noise, mf_noise = read_noise_list(facescrub_noises), read_noise_list(megaface_noises)
    dim, noisy_fs, orphans = _refine_facescrub(fs_rels, fs_noise, facescrub_features, facescrub_out, algo,
                                               np.random.default_rng(seed))
    noisy_mf = _refine_megaface(mf_rels, mf_noise, megaface_features, megaface_out, algo, dim)
    return {
        "facescrub_images": len(fs_rels),
        "facescrub_noisy": noisy_fs,
        "facescrub_noisy_without_clean_identity_images": orphans,
        "megaface_images": len(mf_rels),
        "megaface_noisy": noisy_mf,
    }


def _listed_images(images) -> list:
    """An image list file, or a sequence of relative paths, as checked relative paths."""
    return read_image_list(images) if isinstance(images, (str, os.PathLike)) else [
        _checked_relative(r, "image list") for r in images]


def _refine_facescrub(rels, noise, features_root, out_root, algo: str, rng) -> tuple[int, int, int]:
    """Replaces each noisy FaceScrub feature by its identity's clean mean direction (slightly
    perturbed); every feature gets a 0 appended. Returns ``(feature length, noisy images, noisy
    images whose identity has no clean image)``."""
    feats = {r: read_feature_file(feature_path(features_root, r, algo)) for r in rels}
    dims = {f.size for f in feats.values()}
    if len(dims) != 1:
        raise ValueError(f"{features_root}: features of different lengths {sorted(dims)}")
    (dim,) = dims
    clean_sum: dict[str, np.ndarray] = {}
    noisy: set[str] = set()
    for rel in rels:
        if not PurePosixPath(rel).parent.name:
            raise ValueError(f"FaceScrub image {rel!r} has no identity directory (expected <identity>/<image>)")
    for rel, feat in feats.items():
        identity = PurePosixPath(rel).parent.name
        if _is_listed(rel, noise):
            noisy.add(rel)
        else:
            clean_sum[identity] = clean_sum.get(identity, np.zeros(dim, np.float64)) + feat
    orphans = 0
    for rel in rels:
        identity = PurePosixPath(rel).parent.name
        feat = feats[rel].astype(np.float64)
        if rel in noisy:
            if identity in clean_sum:
                feat = clean_sum[identity] + rng.uniform(-0.001, 0.001, dim)
                feat = feat / np.linalg.norm(feat)
            else:
                orphans += 1
        write_feature_file(feature_path(out_root, rel, algo), np.r_[feat, 0.0])
    return dim, len(noisy), orphans


def _refine_megaface(rels, noise, features_root, out_root, algo: str, dim: int) -> int:
    """Appends 100 to each noisy distractor's feature (pushing it away from every probe), 0 to the
    others; returns the number of noisy distractors."""
    noisy = 0
    for rel in rels:
        feat = read_feature_file(feature_path(features_root, rel, algo))
        if feat.size != dim:
            raise ValueError(f"{feature_path(features_root, rel, algo)}: length {feat.size}, FaceScrub has {dim}")
        extra = 0.0
        if _is_listed(rel, noise):
            extra = 100.0
            noisy += 1
        write_feature_file(feature_path(out_root, rel, algo), np.r_[feat, extra])
    return noisy
