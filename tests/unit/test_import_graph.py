"""The helpers' imports form a tree: no module imports, directly or through others, one that
imports it back. Read from the modules' import statements (every one, also those inside a
function or under TYPE_CHECKING), so a circle shows here before it shows at run time."""

from __future__ import annotations

import ast
from pathlib import Path

HELPERS = Path(__file__).resolve().parents[2] / "helpers"


def module_name(path: Path, root: Path = HELPERS) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = HELPERS) -> dict[str, set[str]]:
    """module -> the helpers modules it imports (a package's own face not counted)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                for a in node.names:
                    full = f"{base}.{a.name}"
                    deps.add(full if full in modules else base)
        # A module may use its own package's face (helpers.flow.state -> helpers.flow) and a
        # package its modules: that is how Python packages work, not a circle of concerns.
        graph[name] = {
            d
            for d in deps
            if d in modules and d != name and not name.startswith(d + ".")
        }
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_helpers_imports_have_no_circle():
    graph = import_graph()
    assert "helpers.view.diagram" in graph and "helpers.flow.state" in graph
    assert cycles(graph) == [], "modules of helpers/ that import each other"


def test_the_circle_finder_finds_a_circle(tmp_path):
    package = tmp_path / "helpers"
    (package / "view").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "view" / "__init__.py").write_text("")
    (package / "view" / "a.py").write_text("from helpers.view.b import B\n")
    (package / "view" / "b.py").write_text(
        "def later():\n    from helpers.view import a  # inside a function still counts\n"
    )
    (package / "c.py").write_text("from .view.a import A\n")
    assert cycles(import_graph(package)) == [["helpers.view.a", "helpers.view.b"]]


def test_the_flow_core_imports_no_view_and_no_widget():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("helpers.flow"):
            assert not {d for d in deps if d.startswith(("helpers.view", "helpers.widgets"))}, name
