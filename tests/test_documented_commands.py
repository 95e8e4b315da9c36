"""Every ``python -m pocketnet_tf.<command>`` line of README.md and docs/*.md still parses.

The command lines are read from the docs (so a new page or command is covered without editing
this file). Each distinct module runs once with ``--helpfull``; every flag a documented line uses
must be one the command defines (dashes or ``--no`` prefixes allowed, as the shared normaliser
accepts them), and every ``--flagfile`` the docs name must exist.
"""

from __future__ import annotations

import re

import pytest

from tests.cli_support import REPO, run_module

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_COMMAND = re.compile(r"python -m (pocketnet_tf(?:\.\w+)+)")
_FLAG = re.compile(r"(?<![\w-])--([A-Za-z][\w-]*)(=\S*)?")
_DEFINED = re.compile(r"^\s+--(?:\[no\])?(\w+):", re.MULTILINE)


def _command_text(lines: list[str], row: int, start: int) -> str:
    """The documented command starting at ``lines[row][start:]``: to the closing backtick of an
    inline code span, else to the end of the line (following ``\\`` continuations), cut at
    ``&&`` and at a ``#`` comment."""
    line = lines[row]
    if line[:start].count("`") % 2 == 1:
        return line[start:].split("`", 1)[0]
    text = line[start:]
    while text.rstrip().endswith("\\") and row + 1 < len(lines):
        row += 1
        text = text.rstrip()[:-1] + " " + lines[row]
    return re.split(r"\s&&\s|\s#\s", text, maxsplit=1)[0]


def documented_commands() -> dict[str, list[tuple[str, str]]]:
    """``{module: [(where, command text), ...]}`` for every documented command line."""
    found: dict[str, list[tuple[str, str]]] = {}
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        for row, line in enumerate(lines):
            for match in _COMMAND.finditer(line):
                where = f"{doc.relative_to(REPO)}:{row + 1}"
                found.setdefault(match.group(1), []).append((where, _command_text(lines, row, match.start())))
    return found


COMMANDS = documented_commands()


def _accepts(name: str, defined: set[str]) -> bool:
    name = name.replace("-", "_")
    return name in defined or (name.startswith("no") and name[2:].lstrip("_") in defined)


def test_the_docs_document_the_commands():
    assert {"pocketnet_tf.train", "pocketnet_tf.search", "pocketnet_tf.convert", "pocketnet_tf.evaluate",
            "pocketnet_tf.data", "pocketnet_tf.align"} <= set(COMMANDS)
    assert sum(len(v) for v in COMMANDS.values()) >= 20


def test_documented_flagfiles_exist():
    for module, uses in COMMANDS.items():
        for where, text in uses:
            for name, value in _FLAG.findall(text):
                path = value[1:]
                if name == "flagfile" and path and not re.search(r"[<>\[\]]", path) and path.startswith("configs/"):
                    assert (REPO / path).is_file(), f"{where}: {path} does not exist"


@pytest.mark.slow
@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_help_and_documented_flags(module):
    proc = run_module(module, ["--helpfull"], timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    defined = set(_DEFINED.findall(proc.stdout))
    assert "flagfile" in defined and len(defined) > 5, f"{module} --helpfull printed no absl flags:\n{proc.stdout}"
    for where, text in COMMANDS[module]:
        unknown = [name for name, _ in _FLAG.findall(text) if not _accepts(name, defined)]
        assert not unknown, f"{where}: {module} has no flag {unknown} (documented: {text.strip()!r})"


def test_readme_test_command_is_the_one_ci_runs():
    """README.md's "Run the tests" command is the line .ci/run executes, verbatim."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"Run the tests .*?```bash\n(.*?)\n```", readme, re.DOTALL)
    assert block, "README.md: no ```bash block after 'Run the tests'"
    command = block.group(1).strip()
    assert command.startswith("python -m pytest"), command
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
                if line.strip().startswith("python -m pytest")]
    assert ci_lines, ".ci/run: no line runs python -m pytest"
    assert [line.split(" >", 1)[0] for line in ci_lines] == [command], (ci_lines, command)
