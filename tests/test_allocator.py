"""``pocketnet_tf.allocator``: which allocator a process has, finding the libraries, and the
restart with the library preloaded (same PID, same arguments)."""

import json
import subprocess
import sys
import textwrap

import pytest

from pocketnet_tf.allocator import AllocatorError, find_library, loaded_allocator, resolve

MAPS = """\
7f00-7f10 r-xp 00000000 08:01 123 /usr/lib/x86_64-linux-gnu/libc.so.6
7f20-7f30 r-xp 00000000 08:01 124 {library}
7f40-7f50 rw-p 00000000 00:00 0 [heap]
"""


@pytest.mark.parametrize("library, expected", [
    ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "jemalloc"),
    ("/usr/local/lib/libtcmalloc_minimal.so.4.5.10", "tcmalloc"),
    ("/usr/lib/x86_64-linux-gnu/libm.so.6", "glibc"),
])
def test_loaded_allocator_reads_the_memory_maps(tmp_path, library, expected):
    maps = tmp_path / "maps"
    maps.write_text(MAPS.format(library=library))
    assert loaded_allocator(maps) == expected
    assert loaded_allocator(tmp_path / "missing") == "glibc"


def test_resolve_prefers_jemalloc_and_names_what_is_missing(tmp_path):
    (tmp_path / "libtcmalloc_minimal.so.4").write_bytes(b"")
    dirs = (str(tmp_path),)
    assert resolve("auto", dirs) == ("tcmalloc", tmp_path / "libtcmalloc_minimal.so.4")
    (tmp_path / "libjemalloc.so.2").write_bytes(b"")
    assert resolve("auto", dirs) == ("jemalloc", tmp_path / "libjemalloc.so.2")
    assert resolve("tcmalloc", dirs)[0] == "tcmalloc"
    assert resolve("glibc", dirs) == ("glibc", None)
    empty = (str(tmp_path / "none"),)
    assert resolve("auto", empty) == ("glibc", None)
    with pytest.raises(AllocatorError, match=r"--allocator=jemalloc: none of libjemalloc.so.2, libjemalloc.so "
                                             r"found in .*none \(Debian/Ubuntu: apt-get install libjemalloc2\)"):
        resolve("jemalloc", empty)
    with pytest.raises(AllocatorError, match="must be one of"):
        resolve("mimalloc", dirs)


SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pocketnet_tf.allocator import REEXEC_MARK, loaded_allocator, preload_and_reexec
    print(json.dumps({"pid": os.getpid(), "allocator": loaded_allocator(), "args": sys.argv[1:],
                      "restarted": bool(os.environ.get(REEXEC_MARK))}), flush=True)
    print(json.dumps({"description": preload_and_reexec(sys.argv[1], sys.argv)}), flush=True)
""")


@pytest.mark.parametrize("name", ["jemalloc", "auto", "glibc"])
def test_the_command_restarts_with_the_allocator_preloaded(tmp_path, name):
    # tools/setup.sh installs libjemalloc2: the default allocator of the search.
    assert find_library("jemalloc") is not None, "libjemalloc2 is not installed (tools/setup.sh installs it)"
    script = tmp_path / "command.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script), name, "--more=1"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    if name == "glibc":
        assert len(lines) == 2 and lines[0]["allocator"] == "glibc" and not lines[0]["restarted"]
        assert lines[1]["description"] == "glibc malloc"
        return
    # Before and after the restart: the same process, the same arguments; jemalloc after.
    first, again, result = lines
    assert first["allocator"] == "glibc" and not first["restarted"]
    assert again["pid"] == first["pid"] and again["args"] == [name, "--more=1"] and again["restarted"]
    assert again["allocator"] == "jemalloc"
    assert result["description"].startswith("jemalloc (") and "libjemalloc.so" in result["description"]
