"""The console's imports, read from its source (ast, ``TYPE_CHECKING`` imports included): no
module of ``tui`` imports another that imports it back, and ``tui`` reaches the box only through
the control client (``appliance.control.client``), never the daemon's own modules. In-process,
nothing imported."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUI = ROOT / "tui"
# everything of appliance the console may import: the control client (its errors re-exported)
ALLOWED_APPLIANCE = {"appliance.control.client"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (function bodies and TYPE_CHECKING too);
    ``from pkg import name`` counts as ``pkg.name`` when that is a module of ours."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in TUI.rglob("*.py")}
    return {name: _imports(path) & modules.keys() - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the list of modules around it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)) is not None:
            return found
    return None


def test_the_console_has_no_import_circle() -> None:
    graph = _graph()
    assert "tui.app" in graph and "tui.screens.base" in graph, "the walk found the package"
    circle = _cycle(graph)
    assert circle is None, "import circle in tui: " + " -> ".join(circle or [])


def test_screens_never_import_the_app() -> None:
    graph = _graph()
    offenders = sorted(m for m, deps in graph.items() if m.startswith("tui.screens") and "tui.app" in deps)
    assert not offenders, f"{offenders} import tui.app: depend on tui.console's Console protocol instead"


def test_the_console_reaches_the_box_only_through_the_control_client() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in TUI.rglob("*.py")
        for name in _imports(path)
        if (name == "appliance" or name.startswith("appliance."))
        and not any(name == a or name.startswith(f"{a}.") for a in ALLOWED_APPLIANCE)
        and name not in {"appliance.control"}  # the package of ``from appliance.control.client``
    }
    assert not offenders, f"tui imports appliance modules other than the control client: {sorted(offenders)}"
