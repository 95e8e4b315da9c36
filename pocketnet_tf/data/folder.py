"""Folder-per-identity image trees: ``root/<identity>/<image>.jpg|.jpeg|.png``.

Identities are the sub-directories of ``root`` in sorted (byte-wise) order, labelled 0, 1, ...;
the images in each are taken in sorted order. Hidden entries (names starting with ``.``) are
ignored, so are files without an image extension (they are counted in
:attr:`FolderSource.ignored_files`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pocketnet_tf.io_utils import atomic_path

__all__ = ["IMAGE_EXTENSIONS", "FolderSource", "looks_like_folder_tree", "write_folder_tree"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def looks_like_folder_tree(root) -> bool:
    """True if ``root`` is a directory with at least one sub-directory holding an image file."""
    root = Path(root)
    if not root.is_dir():
        return False
    for sub in root.iterdir():
        if sub.is_dir() and not sub.name.startswith("."):
            if any(_is_image(p) and p.is_file() for p in sub.iterdir()):
                return True
    return False


class FolderSource:
    """An identity-per-folder tree as an image source for the pipeline.

    Attributes:
      location: the root directory.
      identities: folder names; ``identities[label]`` is the folder of that label.
      files: image paths, grouped by identity.
      labels: int64 class ids aligned with ``files``.
      num_classes_declared: the number of identity folders.
      image_size: None (images are sized when decoded).
      skipped: always empty (unreadable files are found when read).
      ignored_files: number of non-image files seen.
    """

    kind = "folder"

    def __init__(self, root):
        self.location = Path(root)
        if not self.location.is_dir():
            raise FileNotFoundError(f"{self.location}: image folder tree not found")
        self.identities: list[str] = []
        files: list[Path] = []
        labels: list[int] = []
        self.ignored_files = 0
        stray = []
        for entry in sorted(self.location.iterdir(), key=lambda p: p.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_dir():
                stray.append(entry.name)
                continue
            images = []
            for p in sorted(entry.iterdir(), key=lambda p: p.name):
                if p.is_file() and _is_image(p):
                    images.append(p)
                elif not p.name.startswith("."):
                    self.ignored_files += 1
            if not images:
                raise ValueError(
                    f"{entry}: identity folder has no {'/'.join(IMAGE_EXTENSIONS)} images "
                    "(every identity folder must hold at least one image; remove it or add images)"
                )
            label = len(self.identities)
            self.identities.append(entry.name)
            files.extend(images)
            labels.extend([label] * len(images))
        self.ignored_files += len(stray)
        if not self.identities:
            raise ValueError(
                f"{self.location}: no identity folders found (expected root/<identity>/<image>.jpg|png)"
            )
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        self.num_classes_declared = len(self.identities)
        self.image_size = None
        self.skipped: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.files)

    def describe(self, i: int) -> str:
        return str(self.files[i])

    def source_id(self, i: int) -> str:
        return self.files[i].relative_to(self.location).as_posix()

    def read_image(self, i: int) -> bytes:
        path = self.files[i]
        try:
            return path.read_bytes()
        except OSError as err:
            raise ValueError(f"{path}: cannot read image file ({err.strerror or err})") from None

    def close(self) -> None:
        pass


def write_folder_tree(root, labels, images, *, names=None, extension: str = ".jpg") -> None:
    """Writes encoded images as ``root/<identity name>/<nnnnnn><extension>`` (each file atomically).

    Args:
      labels: class id per image.
      images: encoded bytes per image.
      names: identity folder name per class id (default ``id_00000`` style, which sorts in class
        order so reading the tree back gives the same labels).
    """
    root = Path(root)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    counts: dict[int, int] = {}
    for label, data in zip(labels.tolist(), images, strict=True):
        name = names[label] if names is not None else f"id_{label:05d}"
        n = counts.get(label, 0)
        counts[label] = n + 1
        path = root / name / f"{n:06d}{extension}"
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
