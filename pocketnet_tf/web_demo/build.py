"""``build``: the site as a self-contained folder to host anywhere (written atomically).

The folder holds exactly the files ``serve`` would serve. A host must send them over http(s)
(not ``file://``); with the COOP/COEP headers of :data:`pocketnet_tf.web_demo.server.ISOLATION_HEADERS`
the page may use threaded WASM, without them it runs single-threaded. ``crypto.subtle`` (the
bundle's hash checks) needs a secure context: https, or http on localhost.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from pocketnet_tf.io_utils import atomic_path

__all__ = ["build_site"]


def build_site(files: dict[str, Path], out) -> dict:
    """Copies ``files`` ({url path: file}) into ``out`` (replacing an earlier build atomically) and
    writes ``out/site.json`` listing every file with its size and SHA-256; returns that listing."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    listing = []
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for rel, src in sorted(files.items()):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            data = target.read_bytes()
            listing.append({"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        summary = {"schema": "pocketnet_tf.web_site/1", "files": listing}
        (tmp / "site.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
