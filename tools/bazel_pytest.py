"""Run one pytest file inside a Bazel test (the `main` of every generated py_test in //:BUILD).

Usage (Bazel passes the first argument from the BUILD file):
    bazel_pytest.py tests/models/test_pocketnet.py [extra pytest args...]

The test runs from the runfiles copy of the workspace, with pytest's usual rootdir, conftest.py
files and pyproject.toml settings, so a test behaves exactly as under `python -m pytest <file>`.
It refuses to run if `pocketnet_tf` would be imported from anywhere other than that runfiles copy
(e.g. an editable install of a different checkout). pytest's exit status is returned unchanged,
so "no tests collected" (5) fails the Bazel test too.
"""

from __future__ import annotations

import importlib.util
import os
import sys

# Keep the runfiles tree free of __pycache__ directories and pytest's assertion-rewrite caches.
sys.dont_write_bytecode = True
# Anything else that asks `tempfile` for a directory also stays in the test's scratch space.
if os.environ.get("TEST_TMPDIR") and not os.environ.get("TMPDIR"):
    os.environ["TMPDIR"] = os.environ["TEST_TMPDIR"]

_PACKAGE = "pocketnet_tf"


def _workspace_root() -> str:
    """The directory of the main workspace inside the runfiles tree."""
    srcdir = os.environ.get("TEST_SRCDIR") or os.environ.get("RUNFILES_DIR")
    workspace = os.environ.get("TEST_WORKSPACE")
    if srcdir and workspace:
        return os.path.join(srcdir, workspace)
    # `bazel run` of a test, or a manual run: this file is <root>/tools/bazel_pytest.py.
    # abspath, not realpath: the runfiles tree is made of symlinks into the source tree.
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_package_origin(root: str) -> None:
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or spec.origin is None:
        raise SystemExit(f"bazel_pytest: cannot import {_PACKAGE} (sys.path={sys.path})")
    expected = os.path.join(os.path.abspath(root), _PACKAGE, "__init__.py")
    if os.path.abspath(spec.origin) != expected:
        raise SystemExit(
            f"bazel_pytest: {_PACKAGE} resolves to {spec.origin}, not the runfiles copy {expected}"
        )


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: bazel_pytest.py TEST_FILE [PYTEST_ARGS...]")
    test_file, extra = argv[0], argv[1:]
    root = _workspace_root()
    if not os.path.isfile(os.path.join(root, test_file)):
        raise SystemExit(f"bazel_pytest: test file {test_file} not found under {root}")
    os.chdir(root)
    # pytest's default import mode puts the first directory above tests/ without an __init__.py
    # (the workspace root) on sys.path; do it up front so the origin check sees the same path.
    if root not in sys.path:
        sys.path.insert(0, root)
    _check_package_origin(root)

    import pytest

    args = [
        test_file,
        "-q",
        f"--rootdir={root}",
        # The runfiles tree is not ours to write to; no .pytest_cache.
        "-p",
        "no:cacheprovider",
    ]
    test_tmpdir = os.environ.get("TEST_TMPDIR")
    if test_tmpdir:
        # tmp_path and friends live in this test's private scratch directory (cleaned by Bazel),
        # not in the shared /tmp/pytest-of-<user>.
        args.append("--basetemp=" + os.path.join(test_tmpdir, "pytest"))
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        # Per-test-case results for Bazel's test.xml.
        args.append(f"--junitxml={xml}")
    return int(pytest.main(args + extra))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
