"""``serve``: the site over http on 127.0.0.1, cross-origin isolated so threaded WASM can run.

Every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp`` (with ``Cross-Origin-Resource-Policy:
same-origin``), which make the page ``crossOriginIsolated`` so LiteRT.js may load its threaded
build. Only the files of :func:`pocketnet_tf.web_demo.site.site_files` are served (read at request
time), everything else is 404; GET and HEAD only; no caching.
"""

from __future__ import annotations

import http.server
import mimetypes
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = ["ISOLATION_HEADERS", "make_server", "serve"]

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json",
          ".html": "text/html; charset=utf-8", ".css": "text/css", ".tflite": "application/octet-stream",
          ".f32": "application/octet-stream", ".md": "text/markdown; charset=utf-8", ".png": "image/png"}


def _content_type(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"


def _handler(files: dict[str, Path], quiet: bool, isolation: bool):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "pocketnet_tf-web-demo"

        def _lookup(self):
            rel = unquote(urlsplit(self.path).path).lstrip("/")
            return files.get(rel or "index.html"), rel or "index.html"

        def _send(self, body: bool):
            path, rel = self._lookup()
            try:
                data = path.read_bytes() if path is not None else None
            except OSError:
                data = None
            if data is None:
                self.send_error(404, f"{rel}: not part of the demo site")
                return
            self.send_response(200)
            self.send_header("Content-Type", _content_type(rel))
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._send(True)

        def do_HEAD(self):  # noqa: N802
            self._send(False)

        def end_headers(self):
            for key, value in ISOLATION_HEADERS.items() if isolation else ():
                self.send_header(key, value)
            super().end_headers()

        def log_message(self, fmt, *args):
            if not quiet:
                super().log_message(fmt, *args)

    return Handler


def make_server(files: dict[str, Path], port: int, *, quiet: bool = False,
                isolation: bool = True) -> http.server.ThreadingHTTPServer:
    """A threading HTTP server on 127.0.0.1:``port`` (0: any free port) serving ``files``, with the
    cross-origin isolation headers unless ``isolation`` is off."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _handler(dict(files), quiet, isolation))
    server.daemon_threads = True
    return server


def serve(files: dict[str, Path], port: int, *, quiet: bool = False, isolation: bool = True) -> None:
    """Serves until interrupted; prints the URL once listening."""
    server = make_server(files, port, quiet=quiet, isolation=isolation)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"serving the web demo at {url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
