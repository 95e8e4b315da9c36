"""Cell genotypes: the record, the primitive list, safe text/JSON formats and the published cells.

A genotype describes the two searched cells (normal and reduction) of a PocketNet (spec §1, §2.6,
§2.7). Each cell has four intermediate nodes; each node has exactly two incoming edges, written as
``(primitive_name, source_index)`` where source 0 is the cell's s0 input (cell k-2), 1 is s1
(cell k-1) and 2..5 are the earlier intermediate nodes. The cell output concatenates the nodes
listed in ``*_concat`` (always ``[2, 3, 4, 5]`` in PocketNet).

The original stores genotypes as Python source text (``Genotype(normal=[...], normal_concat=
range(2, 6), ...)``) and reads it with ``eval``. :func:`parse` reads the same text with a small
recursive-descent parser that accepts only literals, lists/tuples, ``range(a, b)`` and the
``Genotype(...)`` call, so a hostile string can never execute code.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from pocketnet_tf.bounded import loads_json, read_bounded

#: Primitive names in the original's order: the column order of the alpha matrices.
PRIMITIVES: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "dw_conv_3x3",
    "dw_conv_5x5",
    "dw_conv_7x7",
    "dw_conv_1x1",
    "none",
)

Edge = tuple[str, int]
Node = tuple[Edge, ...]


class GenotypeError(ValueError):
    """A genotype that cannot be parsed or is not well-formed."""


@dataclasses.dataclass(frozen=True)
class Genotype:
    """The normal and reduction cell of a derived network.

    Attributes:
      normal: one entry per intermediate node; each a tuple of ``(primitive, source)`` edges.
      normal_concat: state indices concatenated to form the normal cell's output.
      reduce: as ``normal`` for the reduction cell.
      reduce_concat: as ``normal_concat`` for the reduction cell.
    """

    normal: tuple[Node, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Node, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self):
        for field in ("normal", "reduce"):
            nodes = tuple(
                tuple((str(op), int(src)) for op, src in node) for node in getattr(self, field)
            )
            object.__setattr__(self, field, nodes)
        for field in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, field, tuple(int(i) for i in getattr(self, field)))
        validate(self)

    def cell(self, reduction: bool) -> tuple[tuple[Node, ...], tuple[int, ...]]:
        """``(nodes, concat)`` of the reduction (``True``) or normal cell."""
        return (self.reduce, self.reduce_concat) if reduction else (self.normal, self.normal_concat)

    def to_dict(self) -> dict:
        """JSON-native form: nested lists."""
        return {
            "normal": [[[op, src] for op, src in node] for node in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[[op, src] for op, src in node] for node in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Genotype":
        if not isinstance(data, dict):
            raise GenotypeError(f"genotype must be a mapping, got {type(data).__name__}")
        missing = {"normal", "normal_concat", "reduce", "reduce_concat"} - set(data)
        if missing:
            raise GenotypeError(f"genotype is missing keys {sorted(missing)}")
        extra = set(data) - {"normal", "normal_concat", "reduce", "reduce_concat"}
        if extra:
            raise GenotypeError(f"genotype has unknown keys {sorted(extra)}")
        try:
            return cls(
                normal=_nodes(data["normal"], "normal"),
                normal_concat=_indices(data["normal_concat"], "normal_concat"),
                reduce=_nodes(data["reduce"], "reduce"),
                reduce_concat=_indices(data["reduce_concat"], "reduce_concat"),
            )
        except (TypeError, ValueError) as err:
            if isinstance(err, GenotypeError):
                raise
            raise GenotypeError(f"malformed genotype: {err}") from err


def _nodes(value, field: str):
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"{field}: expected a list of nodes, got {type(value).__name__}")
    nodes = []
    for i, node in enumerate(value):
        if not isinstance(node, (list, tuple)):
            raise GenotypeError(f"{field}[{i}]: expected a list of edges, got {node!r}")
        edges = []
        for j, edge in enumerate(node):
            if not (isinstance(edge, (list, tuple)) and len(edge) == 2):
                raise GenotypeError(f"{field}[{i}][{j}]: expected (primitive, source), got {edge!r}")
            op, src = edge
            if not isinstance(op, str) or isinstance(src, bool) or not isinstance(src, (int, np.integer)):
                raise GenotypeError(f"{field}[{i}][{j}]: expected (str, int), got {edge!r}")
            edges.append((op, int(src)))
        nodes.append(tuple(edges))
    return tuple(nodes)


def _indices(value, field: str) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"{field}: expected a list of state indices, got {type(value).__name__}")
    for i, idx in enumerate(value):
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise GenotypeError(f"{field}[{i}]: expected an integer state index, got {idx!r}")
    return list(value)


def validate(genotype: Genotype) -> None:
    """Checks primitive names and source indices; raises :class:`GenotypeError`."""
    for field in ("normal", "reduce"):
        nodes = getattr(genotype, field)
        if not nodes:
            raise GenotypeError(f"{field}: a cell needs at least one intermediate node")
        for i, node in enumerate(nodes):
            if not node:
                raise GenotypeError(f"{field}[{i}]: a node needs at least one incoming edge")
            for j, (op, src) in enumerate(node):
                if op not in PRIMITIVES:
                    raise GenotypeError(
                        f"{field}[{i}][{j}]: unknown primitive {op!r}; expected one of {list(PRIMITIVES)}"
                    )
                if op == "none":
                    raise GenotypeError(f"{field}[{i}][{j}]: 'none' cannot be an edge of a derived cell")
                if not 0 <= src < i + 2:
                    raise GenotypeError(
                        f"{field}[{i}][{j}]: source {src} out of range for node {i} (expected 0..{i + 1})"
                    )
        concat = getattr(genotype, f"{field}_concat")
        if not concat:
            raise GenotypeError(f"{field}_concat: empty")
        for idx in concat:
            if not 0 <= idx < len(nodes) + 2:
                raise GenotypeError(
                    f"{field}_concat: state {idx} out of range (expected 0..{len(nodes) + 1})"
                )


# ---------------------------------------------------------------------------------------------
# The original's text format, parsed without eval.

_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
      | (?P<number>-?\d+)
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*)
      | (?P<punct>[()\[\],=])
    )""",
    re.VERBOSE,
)


_SPACE_RE = re.compile(r"\s*")
#: Bounds that no real genotype comes near: list nesting (a cell is 3 deep), items one
#: ``range(...)`` may produce, and digits of an integer literal.
MAX_NESTING = 8
MAX_RANGE_ITEMS = 1024
MAX_NUMBER_DIGITS = 9
#: A genotype file is a few hundred bytes; this bounds what :func:`load` reads.
MAX_FILE_BYTES = 1 << 20


class _Parser:
    """Parser for ``Genotype(key=value, ...)`` with literal values only.

    Linear in the text: one regex match per token; nested lists are parsed with an explicit
    stack (at most :data:`MAX_NESTING` deep), never by recursion."""

    def __init__(self, text: str):
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        pos = _SPACE_RE.match(text).end()
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m or m.end() == pos:
                raise self.error(pos, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup
            start = m.start(kind)
            if kind == "number" and len(m.group(kind).lstrip("-")) > MAX_NUMBER_DIGITS:
                raise self.error(start, f"integer literal longer than {MAX_NUMBER_DIGITS} digits")
            self.tokens.append((kind, m.group(kind), start))
            pos = _SPACE_RE.match(text, m.end()).end()
        self.i = 0

    def error(self, pos: int, message: str) -> GenotypeError:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return GenotypeError(f"genotype text, position {pos} (line {line}, column {col}): {message}")

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "", len(self.text))

    def take(self, kind: str, value: str | None = None):
        tok = self.peek()
        if tok[0] != kind or (value is not None and tok[1] != value):
            want = repr(value) if value is not None else kind
            got = "end of text" if tok[0] == "end" else repr(tok[1])
            raise self.error(tok[2], f"expected {want}, found {got}")
        self.i += 1
        return tok

    def parse_genotype(self) -> dict:
        name = self.take("name")
        if name[1] != "Genotype":
            raise self.error(name[2], f"expected 'Genotype(', found {name[1]!r}")
        self.take("punct", "(")
        fields: dict = {}
        while True:
            if self.peek()[:2] == ("punct", ")"):
                break
            key = self.take("name")
            if key[1] in fields:
                raise self.error(key[2], f"duplicate field {key[1]!r}")
            self.take("punct", "=")
            fields[key[1]] = (self.parse_value(), key[2])
            if self.peek()[:2] == ("punct", ","):
                self.i += 1
                continue
            break
        self.take("punct", ")")
        tok = self.peek()
        if tok[0] != "end":
            raise self.error(tok[2], f"unexpected {tok[1]!r} after the closing parenthesis")
        return fields

    def parse_value(self):
        """One value; lists and tuples are built on an explicit stack of ``(items, closer)``."""
        stack: list[tuple[list, str]] = []
        while True:
            kind, value, pos = self.peek()
            if kind == "punct" and value in "[(":
                if len(stack) >= MAX_NESTING:
                    raise self.error(pos, f"lists nested deeper than {MAX_NESTING} levels")
                self.i += 1
                stack.append(([], "]" if value == "[" else ")"))
                if self.peek()[:2] != ("punct", stack[-1][1]):
                    continue
                item = self._close(stack)
            else:
                item = self.parse_scalar()
            while stack:
                items, close = stack[-1]
                items.append(item)
                if self.peek()[:2] == ("punct", ","):
                    self.i += 1
                    if self.peek()[:2] != ("punct", close):
                        break
                elif self.peek()[:2] != ("punct", close):
                    tok = self.peek()
                    got = "end of text" if tok[0] == "end" else repr(tok[1])
                    raise self.error(tok[2], f"expected ',' or {close!r}, found {got}")
                item = self._close(stack)
            else:
                return item

    def _close(self, stack: list) -> list:
        items, close = stack.pop()
        self.take("punct", close)
        return items

    def parse_scalar(self):
        kind, value, pos = self.peek()
        if kind == "string":
            self.i += 1
            body = value[1:-1]
            if "\\" in body:
                raise self.error(pos, "escape sequences are not allowed in primitive names")
            return body
        if kind == "number":
            self.i += 1
            return int(value)
        if kind == "name" and value == "range":
            return self.parse_range()
        got = "end of text" if kind == "end" else repr(value)
        raise self.error(pos, f"expected a string, number, list, tuple or range(...), found {got}")

    def parse_range(self) -> list[int]:
        pos = self.take("name", "range")[2]
        self.take("punct", "(")
        args = [int(self.take("number")[1])]
        while self.peek()[:2] == ("punct", ","):
            self.i += 1
            if self.peek()[:2] == ("punct", ")"):
                break
            args.append(int(self.take("number")[1]))
        if len(args) > 3:
            raise self.error(pos, "range() takes at most 3 arguments")
        self.take("punct", ")")
        if len(args) == 3 and args[2] == 0:
            raise self.error(pos, "range() step must not be zero")
        items = range(*args)
        if len(items) > MAX_RANGE_ITEMS:
            raise self.error(pos, f"range() of {len(items)} items; a genotype needs at most {MAX_RANGE_ITEMS}")
        return list(items)


def parse(text: str) -> Genotype:
    """Parses the original's textual genotype (``Genotype(normal=[...], ...)``) without ``eval``.

    Raises:
      GenotypeError: naming the character position (and line/column) of the problem.
    """
    if not isinstance(text, str):
        raise GenotypeError(f"genotype text must be str, got {type(text).__name__}")
    parser = _Parser(text)
    fields = parser.parse_genotype()
    data = {}
    for key, (value, pos) in fields.items():
        if key not in ("normal", "normal_concat", "reduce", "reduce_concat"):
            raise parser.error(pos, f"unknown field {key!r}")
        data[key] = value
    return Genotype.from_dict(data)


def _concat_text(concat: Sequence[int]) -> str:
    c = list(concat)
    if len(c) > 1 and c == list(range(c[0], c[-1] + 1)):
        return f"range({c[0]}, {c[-1] + 1})"
    return repr(c)


def to_text(genotype: Genotype) -> str:
    """The original's textual form (accepted by the original code and by :func:`parse`)."""

    def cell(nodes):
        return "[" + ", ".join(
            "[" + ", ".join(f"({op!r}, {src})" for op, src in node) + "]" for node in nodes
        ) + "]"

    return (
        f"Genotype(normal={cell(genotype.normal)}, normal_concat={_concat_text(genotype.normal_concat)}, "
        f"reduce={cell(genotype.reduce)}, reduce_concat={_concat_text(genotype.reduce_concat)})"
    )


def to_json(genotype: Genotype, indent: int | None = None) -> str:
    return json.dumps(genotype.to_dict(), indent=indent)


def from_json(text: str) -> Genotype:
    data = loads_json(text, "genotype JSON", max_depth=MAX_NESTING, error=GenotypeError)
    return Genotype.from_dict(data)


def load(path) -> Genotype:
    """Reads a genotype file: JSON (``.json``) or the original text format (anything else)."""
    path = Path(path)
    data = read_bounded(path, MAX_FILE_BYTES, what="genotype file", error=GenotypeError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise GenotypeError(f"{path}: genotype file is not UTF-8 text (byte {err.start})") from None
    try:
        stripped = text.lstrip()
        return from_json(text) if stripped.startswith("{") else parse(text.strip())
    except GenotypeError as err:
        raise GenotypeError(f"{path}: {err}") from err


def save(genotype: Genotype, path) -> None:
    """Writes ``genotype`` atomically: JSON for ``.json`` paths, the original text otherwise."""
    from pocketnet_tf.io_utils import write_text_atomic

    path = Path(path)
    text = to_json(genotype, indent=2) if path.suffix == ".json" else to_text(genotype)
    write_text_atomic(path, text + "\n")


def resolve(value) -> Genotype:
    """Accepts a Genotype, a published name, a dict, JSON/original text, or a file path."""
    if isinstance(value, Genotype):
        return value
    if isinstance(value, dict):
        return Genotype.from_dict(value)
    if isinstance(value, str):
        if value in PUBLISHED:
            return PUBLISHED[value]
        s = value.strip()
        if s.startswith("{"):
            return from_json(s)
        if s.startswith("Genotype"):
            return parse(s)
        if _is_file(s):
            return load(s)
        raise GenotypeError(
            f"{value!r} is not a published genotype ({sorted(PUBLISHED)}), genotype text, JSON or a file"
        )
    if isinstance(value, Path):
        return load(value)
    raise GenotypeError(f"cannot interpret {type(value).__name__} as a genotype")


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        return False


# ---------------------------------------------------------------------------------------------
# Deriving a genotype from architecture parameters (spec §2.6).


def derive(
    alpha_normal: Sequence[np.ndarray],
    alpha_reduce: Sequence[np.ndarray],
    *,
    k: int = 2,
    rank_by: str = "alpha",
) -> Genotype:
    """Derives the discrete genotype from the architecture parameters.

    For every node (one alpha matrix of shape ``(n_edges, len(PRIMITIVES))``): drop the ``none``
    column, take the best primitive of each incoming edge (first index on ties), then keep the
    ``k`` edges with the largest best score (stable: the earlier edge wins a tie), ordered by
    decreasing score.

    Args:
      alpha_normal, alpha_reduce: per-node matrices; node i has i + 2 rows.
      k: edges kept per node.
      rank_by: ``"alpha"`` ranks by the raw logits exactly as the PocketNet code does;
        ``"softmax"`` ranks by the row-wise softmax weights as in the DARTS paper.
    """
    if rank_by not in ("alpha", "softmax"):
        raise ValueError(f"rank_by must be 'alpha' or 'softmax', got {rank_by!r}")

    def cell(alphas):
        nodes = []
        for i, a in enumerate(alphas):
            a = np.asarray(a, dtype=np.float64)
            if a.ndim != 2 or a.shape != (i + 2, len(PRIMITIVES)):
                raise ValueError(
                    f"alpha for node {i} has shape {a.shape}, expected {(i + 2, len(PRIMITIVES))}"
                )
            if rank_by == "softmax":
                e = np.exp(a - a.max(axis=1, keepdims=True))
                a = e / e.sum(axis=1, keepdims=True)
            scores = a[:, :-1]  # drop 'none' (asserted last in PRIMITIVES)
            best_op = scores.argmax(axis=1)
            best = scores[np.arange(len(scores)), best_op]
            order = sorted(range(len(best)), key=lambda e: (-best[e], e))[:k]
            nodes.append(tuple((PRIMITIVES[int(best_op[e])], int(e)) for e in order))
        return tuple(nodes)

    assert PRIMITIVES[-1] == "none"
    n_normal, n_reduce = len(alpha_normal), len(alpha_reduce)
    return Genotype(
        normal=cell(alpha_normal),
        normal_concat=tuple(range(2, 2 + n_normal)),
        reduce=cell(alpha_reduce),
        reduce_concat=tuple(range(2, 2 + n_reduce)),
    )


# ---------------------------------------------------------------------------------------------
# Published genotypes (spec §2.7): data, exactly as stored in the original configs.

SOFTMAX_CASIA_TEXT = (
    "Genotype(normal=[[('dw_conv_3x3', 0), ('dw_conv_1x1', 1)], [('dw_conv_3x3', 2), ('dw_conv_5x5', 0)], "
    "[('dw_conv_3x3', 3), ('dw_conv_3x3', 0)], [('dw_conv_3x3', 4), ('skip_connect', 0)]], "
    "normal_concat=range(2, 6), reduce=[[('dw_conv_3x3', 1), ('dw_conv_7x7', 0)], "
    "[('skip_connect', 2), ('dw_conv_5x5', 1)], [('max_pool_3x3', 0), ('skip_connect', 2)], "
    "[('max_pool_3x3', 0), ('max_pool_3x3', 1)]], reduce_concat=range(2, 6))"
)
SOFTMAX_CIFAR10_TEXT = (
    "Genotype(normal=[[('dw_conv_7x7', 0), ('dw_conv_3x3', 1)], [('dw_conv_1x1', 1), ('dw_conv_1x1', 2)], "
    "[('max_pool_3x3', 2), ('dw_conv_7x7', 3)], [('dw_conv_5x5', 4), ('max_pool_3x3', 0)]], "
    "normal_concat=range(2, 6), reduce=[[('max_pool_3x3', 0), ('dw_conv_7x7', 1)], "
    "[('max_pool_3x3', 0), ('max_pool_3x3', 1)], [('max_pool_3x3', 0), ('max_pool_3x3', 2)], "
    "[('max_pool_3x3', 0), ('max_pool_3x3', 1)]], reduce_concat=range(2, 6))"
)

SOFTMAX_CASIA = parse(SOFTMAX_CASIA_TEXT)
SOFTMAX_CIFAR10 = parse(SOFTMAX_CIFAR10_TEXT)

PUBLISHED: dict[str, Genotype] = {
    "softmax_casia": SOFTMAX_CASIA,
    "softmax_cifar10": SOFTMAX_CIFAR10,
}
