"""No import circles: the imports between ``src/embrec``'s modules form a graph without cycles.

The graph is read with ``ast`` (nothing is imported). An edge runs from a module to each
``embrec`` module it imports, not counting ``if TYPE_CHECKING:`` imports. Two graphs are
checked: the module-level imports (run when the module is imported) must have no circle at
all; with the function-level (lazy) imports added, a circle is only hidden, not removed, so
that graph must have none either, except the back-edges listed below while they are fixed.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lazy imports that close a circle, allowed until their fix lands: delete each entry then.
KNOWN: dict[tuple[str, str], str] = {}
"""Import edges that close a circle and are allowed for now, with why (none are left)."""


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package."""
    names = {}
    for path in sorted((SRC / "embrec").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level(body: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The import statements run when the module is imported (not lazily, not for typing)."""
    found: list[ast.Import | ast.ImportFrom] = []
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif isinstance(node, ast.If):
            found += [] if _type_checking(node) else _top_level(node.body)
            found += _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody,
                          *(h.body for h in node.handlers)):
                found += _top_level(block)
        elif isinstance(node, ast.With):
            found += _top_level(node.body)
    return found


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             known: dict[str, Path]) -> set[str]:
    """The package's modules one import statement loads."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:
        anchor = module.split(".")
        anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
        base = ".".join([*anchor, base] if base else anchor)
    found = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    if base in known and len(found) < len(node.names):
        found.add(base)
    return found


def _everywhere(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, lazy ones inside functions too, except those for typing only."""
    typing_only = {id(node) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and _type_checking(block)
                   for statement in block.body for node in ast.walk(statement)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only]


def import_graph(lazy: bool) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at module level, or anywhere if ``lazy``)."""
    known = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        package = path.name == "__init__.py"
        nodes = _everywhere(tree) if lazy else _top_level(tree.body)
        graph[module] = set().union(*(_targets(node, module, package, known)
                                      for node in nodes)) - {module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle(graph, component) for component in components]


def _cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest path from the component's first module back to itself."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{sorted(component)} is no cycle")


def test_module_level_imports_have_no_circle() -> None:
    found = [" -> ".join(cycle) for cycle in circles(import_graph(lazy=False))]
    assert not found, "import circles:\n" + "\n".join(found)


def test_lazy_imports_hide_no_circle_beyond_the_known_ones() -> None:
    graph = import_graph(lazy=True)
    for (source, target) in KNOWN:
        graph[source].discard(target)
    found = [" -> ".join(cycle) for cycle in circles(graph)]
    assert not found, "import circles (counting imports inside functions):\n" + "\n".join(found)


def test_each_known_circle_is_still_there() -> None:
    """An allowance outlives its circle only until this test says to delete it."""
    graph = import_graph(lazy=True)
    for (source, target), circle in KNOWN.items():
        closes = target in graph[source] and _reaches(graph, target, source)
        assert closes, f"{circle} is gone: delete it from KNOWN"


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, frontier = {start}, [start]
    while frontier:
        node = frontier.pop()
        if node == goal:
            return True
        fresh = graph[node] - seen
        seen |= fresh
        frontier += sorted(fresh)
    return False


def test_the_walker_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_relative_and_from_imports_resolve_to_modules() -> None:
    known = dict.fromkeys(["p", "p.x", "p.y"], Path())
    relative = ast.parse("from . import x\nfrom .y import thing").body
    assert [_targets(n, "p.z", False, known) for n in relative] == [  # type: ignore[arg-type]
        {"p.x"}, {"p.y"}]
    absolute = ast.parse("import p.x\nfrom p import y, helper").body
    assert [_targets(n, "q", False, known) for n in absolute] == [  # type: ignore[arg-type]
        {"p.x"}, {"p.y", "p"}]
