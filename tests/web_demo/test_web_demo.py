"""pocketnet_tf.web_demo: the site's file map, the isolated 127.0.0.1 server, the atomic build and
the CLI, on a real converter bundle. (The page itself is tested in Chromium by ``npm test`` in
web_demo/.)"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pocketnet_tf.web_demo import build, server, site
from tests import factory


def _fake_web_root(root: Path) -> Path:
    """A web_demo/ layout with the files the site takes (so the tests need no `npm ci`)."""
    for rel in ("index.html", "latency.html", "src/app.js", *site.LITERT_FILES):
        path = root / rel
        if rel.endswith("/wasm"):
            path = path / "litert_wasm_internal.wasm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"content of {rel}".encode())
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return factory.export_bundle(tmp_path_factory.mktemp("web_bundle"), "fp32", False)


@pytest.fixture()
def files(tmp_path, bundle):
    detector = tmp_path / "blazeface.tflite"
    detector.write_bytes(b"detector bytes")
    return site.site_files(bundle, web_root=_fake_web_root(tmp_path / "web"), detector=detector)


def test_site_files_map_page_runtime_detector_and_bundle(files, bundle):
    assert files["models/blazeface.tflite"].read_bytes() == b"detector bytes"
    assert files["node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm"].name == "litert_wasm_internal.wasm"
    bundle_files = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(k[len("bundle/"):] for k in files if k.startswith("bundle/")) == bundle_files
    assert {"bundle/model.tflite", "bundle/metadata.json", "bundle/golden/golden.json"} <= set(files)


def test_site_files_refuses_symlinks_and_missing_runtime(tmp_path, bundle):
    web = _fake_web_root(tmp_path / "web")
    (web / "src" / "link.js").symlink_to(web / "src" / "app.js")
    with pytest.raises(ValueError, match="link.js: is a symlink"):
        site.site_files(bundle, web_root=web, detector=web / "index.html")
    (web / "src" / "link.js").unlink()
    (web / "node_modules/@litertjs/core/dist/index.js").unlink()
    with pytest.raises(FileNotFoundError, match="npm ci"):
        site.site_files(bundle, web_root=web, detector=web / "index.html")


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_server_serves_only_the_site_with_isolation_headers(files, bundle):
    httpd = server.make_server(files, 0, quiet=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        assert httpd.server_address[0] == "127.0.0.1"
        status, headers, body = _get(base + "bundle/model.tflite")
        assert status == 200 and body == (bundle / "model.tflite").read_bytes()
        for key, value in server.ISOLATION_HEADERS.items():
            assert headers[key] == value
        assert headers["Content-Type"] == "application/octet-stream"
        status, headers, body = _get(base)
        assert (status, body, headers["Content-Type"]) == (200, b"content of index.html", "text/html; charset=utf-8")
        assert _get(base + "node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm")[1]["Content-Type"] == "application/wasm"
        for bad in ("../pyproject.toml", "bundle/../../etc/passwd", "%2e%2e/setup.py", "nope.js", "bundle/"):
            status, headers, _ = _get(base + bad)
            assert status == 404, bad
            assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        httpd.shutdown()
        httpd.server_close()
    plain = server.make_server(files, 0, quiet=True, isolation=False)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    try:
        status, headers, _ = _get(f"http://127.0.0.1:{plain.server_address[1]}/bundle/metadata.json")
        assert status == 200 and not set(server.ISOLATION_HEADERS) & set(headers)
    finally:
        plain.shutdown()
        plain.server_close()


def test_build_writes_the_site_atomically_with_a_listing(files, tmp_path):
    out = tmp_path / "site"
    summary = build.build_site(files, out)
    listed = {f["path"]: f for f in summary["files"]}
    assert set(listed) == set(files)
    for rel, src in files.items():
        data = (out / rel).read_bytes()
        assert data == src.read_bytes()
        assert listed[rel] == {"path": rel, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert json.loads((out / "site.json").read_text()) == summary
    # A rebuild replaces the folder: a stale file from the earlier build is gone.
    (out / "stale.txt").write_text("old")
    build.build_site(files, out)
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        build.build_site(files, tmp_path / "file")


@pytest.mark.slow
def test_cli_build_and_refusal_of_a_corrupt_bundle(bundle, tmp_path):
    web = _fake_web_root(tmp_path / "web")
    out = tmp_path / "site"
    cmd = [sys.executable, "-m", "pocketnet_tf.web_demo", "build", f"--bundle={bundle}", f"--out={out}",
           f"--web_root={web}", f"--detector={web / 'index.html'}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (out / "bundle" / "model.tflite").read_bytes() == (bundle / "model.tflite").read_bytes()
    bad = tmp_path / "bad"
    subprocess.run(["cp", "-r", str(bundle), str(bad)], check=True)
    model = bytearray((bad / "model.tflite").read_bytes())
    model[100] ^= 1
    (bad / "model.tflite").write_bytes(bytes(model))
    done = subprocess.run([*cmd[:3], "build", f"--bundle={bad}", f"--out={tmp_path / 'site2'}", *cmd[6:]],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not match" in done.stderr and "model.tflite" in done.stderr
    assert not (tmp_path / "site2").exists()
    done = subprocess.run([*cmd[:3], "serve", f"--bundle={tmp_path / 'missing'}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "bundle directory not found" in done.stderr


def test_flags_to_config(tmp_path, bundle):
    from absl import flags as absl_flags

    from pocketnet_tf.web_demo import flags as web_flags
    from pocketnet_tf.web_demo.config import WebDemoConfig

    fv = absl_flags.FlagValues()
    web_flags.define_flags(fv)
    fv(["prog", f"--bundle={bundle}", "--port=0", "--noisolation", "--nocheck_bundle"])
    config = WebDemoConfig.from_flags("serve", fv)
    assert (config.bundle, config.port, config.isolation, config.check_bundle, config.out) == (str(bundle), 0, False, False, None)
    with pytest.raises(ValueError, match="build needs --out"):
        WebDemoConfig.from_flags("build", fv)
    with pytest.raises(ValueError, match="unknown command 'host'"):
        WebDemoConfig.from_flags("host", fv)
    with pytest.raises(absl_flags.IllegalFlagValueError):
        fv(["prog", "--port=70000"])
