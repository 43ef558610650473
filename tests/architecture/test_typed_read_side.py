"""The read side reads typed payloads: no projection, the auditors' replay or the notice rules
index an event's raw ``data`` or match its ``type`` against a string.

Readers decode with ``registry.payload(event)``, which upcasts an old version, and match on
the class it returns (docs/decisions/0021-event-contracts.md), so that mypy sees every field
a reader reads and a renamed field cannot hide behind a ``.get()``. This test reads the
modules' syntax trees and names every raw read it finds:

- ``event.data[...]``, ``event.data.get(...)`` (any ``.data``), or a local alias of it
  (``d = event.data``) subscripted or read with ``get``/``items``/``keys``/``values``;
- ``event.type`` (any ``.type``), or a local name derived from it
  (``name = event.type.removeprefix(...)``), compared to a string literal, matched against
  one, or tested with ``startswith``/``endswith``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READERS = [
    *sorted(ROOT.glob("services/*/src/*/projections.py")),
    ROOT / "shared/src/stafett_shared/replay.py",
    ROOT / "services/notify/src/stafett_notify/domain.py",
]
_DICT_READS = frozenset({"get", "items", "keys", "values", "pop", "setdefault"})
_PREFIX_TESTS = frozenset({"startswith", "endswith"})


def _is_text(node: ast.expr) -> bool:
    """A string literal, or a tuple, list or set of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return bool(node.elts) and all(_is_text(e) for e in node.elts)
    return False


def _texts_in(pattern: ast.pattern) -> bool:
    """Whether a ``case`` pattern matches a string literal anywhere."""
    return any(isinstance(n, ast.MatchValue) and _is_text(n.value) for n in ast.walk(pattern))


class _RawReads(ast.NodeVisitor):
    """Collects ``(line, what)`` for each raw read; aliases are tracked per function."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self._data: list[set[str]] = [set()]  # names bound to an event's raw data
        self._type: list[set[str]] = [set()]  # names derived from an event's type

    # --- scopes ----------------------------------------------------------------------------

    def _scoped(self, node: ast.AST) -> None:
        self._data.append(set())
        self._type.append(set())
        self.generic_visit(node)
        self._data.pop()
        self._type.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scoped(node)

    # --- what an expression is -------------------------------------------------------------

    def _raw_data(self, node: ast.expr) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr == "data"
        if isinstance(node, ast.Name):
            return node.id in self._data[-1]
        if isinstance(node, ast.BoolOp):  # event.data or {}
            return any(self._raw_data(v) for v in node.values)
        if isinstance(node, ast.NamedExpr):  # (d := event.data)
            return self._raw_data(node.value)
        return False

    def _from_type(self, node: ast.expr) -> bool:
        return any(
            (isinstance(n, ast.Attribute) and n.attr == "type")
            or (isinstance(n, ast.Name) and n.id in self._type[-1])
            for n in ast.walk(node)
        )

    # --- bindings --------------------------------------------------------------------------

    def _bind(self, target: ast.expr, value: ast.expr | None) -> None:
        if value is None:
            return
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            for t, v in zip(target.elts, value.elts, strict=False):
                self._bind(t, v)
            return
        if not isinstance(target, ast.Name):
            return
        for aliases, applies in ((self._data, self._raw_data), (self._type, self._from_type)):
            if applies(value):
                aliases[-1].add(target.id)
            else:
                aliases[-1].discard(target.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self._bind(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        self._bind(node.target, node.value)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.generic_visit(node)
        self._bind(node.target, node.value)

    # --- reads -----------------------------------------------------------------------------

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if self._raw_data(node.value):
            self.found.append((node.lineno, "raw payload subscripted"))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in _DICT_READS and self._raw_data(func.value):
                self.found.append((node.lineno, f"raw payload read with .{func.attr}()"))
            elif (
                func.attr in _PREFIX_TESTS
                and self._from_type(func.value)
                and any(_is_text(a) for a in node.args)
            ):
                self.found.append((node.lineno, f"event type tested with .{func.attr}()"))
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        if any(self._from_type(o) for o in operands) and any(_is_text(o) for o in operands):
            self.found.append((node.lineno, "event type compared to a string"))
        self.generic_visit(node)

    def visit_Match(self, node: ast.Match) -> None:
        if self._from_type(node.subject):
            for case in node.cases:
                if _texts_in(case.pattern):
                    self.found.append((case.pattern.lineno, "event type matched to a string"))
        self.generic_visit(node)


def raw_reads(source: str) -> list[tuple[int, str]]:
    """``(line, what)`` of every raw payload read or type-string match in ``source``."""
    visitor = _RawReads()
    visitor.visit(ast.parse(source))
    return sorted(visitor.found)


def test_the_readers_are_all_there() -> None:
    assert {p.parts[-4] for p in READERS if p.name == "projections.py"} == {
        "case",
        "log",
        "consent",
        "notify",
    }
    assert all(p.is_file() for p in READERS)


@pytest.mark.parametrize("path", READERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_reader_decodes_payloads_and_matches_on_classes(path: Path) -> None:
    found = raw_reads(path.read_text(encoding="utf-8"))
    assert found == [], "\n".join(f"{path.name}:{line}: {what}" for line, what in found)


OLD_STYLE = """
def apply(event, case):
    d = event.data
    name = event.type.removeprefix("no.stafett.").rsplit(".", 1)[0]
    match name:
        case "case.opened":
            case.holder = d["holder"]["person_id"]
        case "case.handover_accepted" | "case.handover_declined":
            case.org = d.get("to_org_id") or case.org
    if event.type == "no.stafett.case.closed.v1":
        case.closed = event.data["reason"]
    if name.startswith(("case.", "log.")):
        case.id = event.data.get("case_id")
    if name in {"consent.requested", "consent.activated"}:
        case.consents += 1
    match event.type:
        case "no.stafett.access.recorded.v1":
            pass
    holder = (data := event.data).get("holder")


def rules(view):
    d = view.data
    for key, value in d.items():
        pass
    return d.get("level") == 3
"""

NEW_STYLE = """
def apply(event, case, registry, commit):
    payload = registry.payload(event)
    match payload:
        case CaseOpened(holder=holder):
            case.holder = holder.person_id
        case HandoverAccepted():
            case.org = payload.to_org_id
    name = payload.event_type.removeprefix("no.stafett.")
    states = {ConsentRequested: "requested"}
    case.events[name] += 1
    case.state = states[type(payload)]
    kind = "handover_accepted" if isinstance(payload, HandoverAccepted) else "other"
    leaves = [commit.data, event.type]
    d = {"type": event.subject}
    return d["type"], kind == "other", leaves
"""


def test_the_check_names_every_raw_read_of_the_old_style() -> None:
    assert raw_reads(OLD_STYLE) == [
        (6, "event type matched to a string"),
        (7, "raw payload subscripted"),
        (8, "event type matched to a string"),
        (9, "raw payload read with .get()"),
        (10, "event type compared to a string"),
        (11, "raw payload subscripted"),
        (12, "event type tested with .startswith()"),
        (13, "raw payload read with .get()"),
        (14, "event type compared to a string"),
        (17, "event type matched to a string"),
        (19, "raw payload read with .get()"),
        (24, "raw payload read with .items()"),
        (26, "raw payload read with .get()"),
    ]


def test_the_check_finds_nothing_in_typed_reads() -> None:
    assert raw_reads(NEW_STYLE) == []
