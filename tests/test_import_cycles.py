"""No import cycle among ``pocketnet_tf`` modules, counting imports inside functions too.

A function-level import hides a cycle from Python (the module imports fine) but not from a
reader: the two modules still need each other. The graph here has an edge ``a -> b`` for every
``import``/``from ... import`` of a ``pocketnet_tf`` module anywhere in ``a``'s source (module
level, functions, methods, ``TYPE_CHECKING`` blocks). A package's ``__init__`` importing its own
submodules is not a cycle (Python runs the ``__init__`` first), so importing ``pkg.sub`` adds an
edge to ``pkg.sub`` only, not to ``pkg``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "pocketnet_tf"
REPO = Path(__file__).resolve().parents[1]


def module_files(root: Path) -> dict:
    """``{dotted module name: path}`` for every ``.py`` file of ``root / PACKAGE``."""
    out = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported_names(node: ast.AST, module: str, is_package: bool, modules: dict) -> list:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:  # relative: from .x import y / from .. import z
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    # ``from pkg import name``: an edge to ``pkg.name`` when that is a module, else to ``pkg``.
    return [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source for alias in node.names]


def import_graph(root: Path) -> dict:
    """``{module: {imported module: first line importing it}}`` over ``root / PACKAGE``."""
    modules = module_files(root)
    graph = {}
    for module, path in modules.items():
        edges = {}
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            for target in _imported_names(node, module, path.name == "__init__.py", modules):
                if target in modules and target != module:
                    edges.setdefault(target, node.lineno)
        graph[module] = edges
    return graph


def find_cycles(graph: dict) -> list:
    """Every strongly connected component of more than one module, as a sorted list (Tarjan,
    iterative)."""
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def describe(graph: dict, component: list) -> str:
    return "; ".join(f"{a}:{line} -> {b}" for a in component for b, line in graph[a].items() if b in component)


def test_the_package_has_no_import_cycle():
    graph = import_graph(REPO)
    assert len(graph) > 100, f"found only {len(graph)} modules under {REPO / PACKAGE}"
    # The walk sees function-level imports: the runner imports its pipeline inside train_stage.
    assert "pocketnet_tf.data.pipeline" in graph["pocketnet_tf.train.runner"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + " | ".join(describe(graph, c) for c in cycles)


# Search fits with what it shares with training (``fitting/``), never with ``train/`` itself.


def test_search_does_not_import_train():
    graph = import_graph(REPO)
    edges = {(module, target) for module, targets in graph.items() if module.startswith("pocketnet_tf.search")
             for target in targets if target == "pocketnet_tf.train" or target.startswith("pocketnet_tf.train.")}
    assert not edges, sorted(edges)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / PACKAGE / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cycle_hidden_in_a_function_is_found(tmp_path):
    _write(tmp_path, "__init__.py", "")
    _write(tmp_path, "data/__init__.py", "from pocketnet_tf.data import pipeline\n")  # not a cycle
    _write(tmp_path, "data/pipeline.py", "from pocketnet_tf.data import tfrecord\n")
    _write(tmp_path, "data/tfrecord.py", "def read():\n    from . import pipeline\n    return pipeline\n")
    _write(tmp_path, "train/__init__.py", "")
    _write(tmp_path, "train/runner.py", "import pocketnet_tf.data.pipeline\n")
    graph = import_graph(tmp_path)
    assert graph["pocketnet_tf.data.tfrecord"] == {"pocketnet_tf.data.pipeline": 2}
    assert find_cycles(graph) == [["pocketnet_tf.data.pipeline", "pocketnet_tf.data.tfrecord"]]


def test_a_longer_cycle_through_relative_and_from_imports_is_found(tmp_path):
    _write(tmp_path, "__init__.py", "")
    _write(tmp_path, "a.py", "from pocketnet_tf.sub import b\n")
    _write(tmp_path, "sub/__init__.py", "")
    _write(tmp_path, "sub/b.py", "from .c import thing\n")
    _write(tmp_path, "sub/c.py", "class K:\n    def m(self):\n        from .. import a\n")
    _write(tmp_path, "d.py", "from pocketnet_tf import a\n")  # into the cycle, not part of it
    assert find_cycles(import_graph(tmp_path)) == [["pocketnet_tf.a", "pocketnet_tf.sub.b", "pocketnet_tf.sub.c"]]
