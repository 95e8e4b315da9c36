"""The files that make up the browser demo's site: URL path -> file on disk.

The page (``web_demo/index.html`` and ``web_demo/src/``), the LiteRT.js files it imports from
``web_demo/node_modules`` (installed by ``npm ci`` in ``web_demo/``), BlazeFace short-range (the
same ``.tflite`` the desktop pipeline uses, :func:`pocketnet_tf.face.detect.detector_model_path`)
as ``models/blazeface.tflite``, and the bundle's regular files under ``bundle/``. Nothing outside
this map is served or copied.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LITERT_FILES", "default_web_root", "site_files"]

#: The parts of the npm packages the page loads (the ES modules and the four WASM builds).
LITERT_FILES = (
    "node_modules/@litertjs/core/dist/index.js",
    "node_modules/@litertjs/core/wasm",
    "node_modules/@litertjs/wasm-utils/dist/index.js",
)
_PAGE_FILES = ("index.html", "latency.html", "src")


def default_web_root() -> Path:
    """``web_demo/`` of the repository this package is installed from."""
    return Path(__file__).resolve().parents[2] / "web_demo"


def _regular_files(root: Path, rel: str, source: str) -> dict[str, Path]:
    path = root / rel
    if path.is_symlink():
        raise ValueError(f"{path}: is a symlink; the site holds regular files only")
    if path.is_file():
        return {rel: path}
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: missing ({source})")
    out = {}
    for item in sorted(path.rglob("*")):
        if item.is_symlink():
            raise ValueError(f"{item}: is a symlink; the site holds regular files only")
        if item.is_file():
            out[item.relative_to(root).as_posix()] = item
    return out


def site_files(bundle_dir, *, web_root=None, detector=None) -> dict[str, Path]:
    """``{url path: file}`` of the whole site (paths relative, POSIX, no leading slash).

    Raises:
      FileNotFoundError: the page, the npm packages (run ``npm ci`` in web_demo/), the detector or
        the bundle is missing.
      ValueError: a symlink where a regular file is expected.
    """
    from pocketnet_tf.face.detect import detector_model_path

    root = Path(web_root) if web_root is not None else default_web_root()
    files: dict[str, Path] = {}
    for rel in _PAGE_FILES:
        files.update(_regular_files(root, rel, "the page"))
    for rel in LITERT_FILES:
        files.update(_regular_files(root, rel, "run `npm ci` in web_demo/ to install LiteRT.js"))
    detector_path = Path(detector) if detector is not None else detector_model_path()
    if not detector_path.is_file():
        raise FileNotFoundError(f"{detector_path}: BlazeFace model not found")
    files["models/blazeface.tflite"] = detector_path
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise FileNotFoundError(f"{bundle_dir}: bundle directory not found")
    for rel, path in _regular_files(bundle_dir, ".", "the bundle").items():
        files[f"bundle/{Path(rel).as_posix()}"] = path
    return files
