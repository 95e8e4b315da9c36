"""The process' memory allocator: glibc's malloc, or jemalloc / tcmalloc preloaded.

TensorFlow's CPU tensors come from ``malloc``. The search step's first call builds and
instantiates a 20,000-op graph in hundreds of functions (millions of small allocations) and then
touches its peak memory for the first time; with glibc's malloc much of that time went to
``malloc``/``free``/``malloc_consolidate`` and to page faults. Paper search network, batch 32 per
half, second order (docs/search.md, Cost): first step 72.9 s with glibc, 60.4 s with jemalloc and
60.7 s with tcmalloc, peak 3.94 -> 3.46 GB, steps unchanged.

An allocator has to be in place before the process' first allocation, so it is preloaded
(``LD_PRELOAD``): :func:`preload_and_reexec` restarts the current command in the same process
(``os.execve``: same PID, same pipes) with the library preloaded, before TensorFlow is imported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: ``--allocator`` values. ``auto``: jemalloc, else tcmalloc, if installed; else glibc's malloc.
ALLOCATORS = ("auto", "jemalloc", "tcmalloc", "glibc")

#: Library file names, most preferred first (Debian/Ubuntu: libjemalloc2, libtcmalloc-minimal4).
LIBRARIES = {
    "jemalloc": ("libjemalloc.so.2", "libjemalloc.so"),
    "tcmalloc": ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so", "libtcmalloc.so"),
}

#: How each library's file name starts once loaded (any version suffix).
LOADED_PREFIXES = {"jemalloc": ("libjemalloc.so",), "tcmalloc": ("libtcmalloc.so", "libtcmalloc_minimal.so")}

SEARCH_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
               "/usr/local/lib", "/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu")

#: Set in the restarted process, so that a preload that did not take cannot loop.
REEXEC_MARK = "POCKETNET_TF_ALLOCATOR_REEXEC"


class AllocatorError(ValueError):
    """An explicitly requested allocator is not installed."""


def loaded_allocator(maps: str | Path = "/proc/self/maps") -> str:
    """``"jemalloc"``, ``"tcmalloc"`` or ``"glibc"``: the allocator mapped into this process
    (read from its memory maps; ``"glibc"`` where there are none to read)."""
    try:
        text = Path(maps).read_text()
    except OSError:
        return "glibc"
    names = {Path(line.split()[-1]).name for line in text.splitlines() if "/" in line}
    for name, prefixes in LOADED_PREFIXES.items():
        if any(n.startswith(prefixes) for n in names):
            return name
    return "glibc"


def find_library(name: str, dirs=SEARCH_DIRS) -> Path | None:
    """The installed library file of allocator ``name`` (``jemalloc``/``tcmalloc``), or None."""
    for file_name in LIBRARIES[name]:
        for directory in dirs:
            path = Path(directory) / file_name
            if path.is_file():
                return path
    return None


def resolve(name: str, dirs=SEARCH_DIRS) -> tuple[str, Path | None]:
    """``(allocator, library)`` for ``--allocator=name``: ``("glibc", None)`` for glibc or an
    ``auto`` that found neither library; raises :class:`AllocatorError` naming the files looked
    for when an explicitly named allocator is not installed."""
    if name not in ALLOCATORS:
        raise AllocatorError(f"--allocator must be one of {list(ALLOCATORS)}, received {name!r}")
    if name == "glibc":
        return "glibc", None
    for candidate in (("jemalloc", "tcmalloc") if name == "auto" else (name,)):
        library = find_library(candidate, dirs)
        if library is not None:
            return candidate, library
    if name == "auto":
        return "glibc", None
    raise AllocatorError(f"--allocator={name}: none of {', '.join(LIBRARIES[name])} found in "
                         f"{', '.join(dirs)} (Debian/Ubuntu: apt-get install "
                         f"{'libjemalloc2' if name == 'jemalloc' else 'libtcmalloc-minimal4'}); "
                         "--allocator=glibc uses the system's malloc")


def preload_and_reexec(name: str, argv: list[str], dirs=SEARCH_DIRS) -> str:
    """Makes allocator ``name`` (an ``--allocator`` value) this process' allocator: if it is
    already loaded, or resolves to glibc, returns a one-line description for the log; otherwise
    restarts the command (``python -m ...`` / the script, with ``argv``) with the library added to
    ``LD_PRELOAD`` and does not return. Call it before importing TensorFlow."""
    wanted, library = resolve(name, dirs)
    current = loaded_allocator()
    if wanted == "glibc":
        if current != "glibc":
            return f"{current} (preloaded by the environment; --allocator={name})"
        found = "" if name == "glibc" else " (neither jemalloc nor tcmalloc is installed)"
        return f"glibc malloc{found}"
    if current == wanted:
        return f"{wanted} ({library})"
    if os.environ.get(REEXEC_MARK):
        return f"{current} malloc: preloading {library} did not take effect (LD_PRELOAD={os.environ.get('LD_PRELOAD')})"
    env = dict(os.environ)
    env["LD_PRELOAD"] = ":".join(p for p in (str(library), env.get("LD_PRELOAD", "")) if p)
    env[REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *_command(argv)], env)
    raise AssertionError("unreachable")  # pragma: no cover


def _command(argv: list[str]) -> list[str]:
    """The interpreter arguments that re-run this command: ``-m module`` under ``python -m``."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        module = spec.name[: -len(".__main__")] if spec.name.endswith(".__main__") else spec.name
        return ["-m", module, *argv[1:]]
    return [os.path.abspath(argv[0]), *argv[1:]]
