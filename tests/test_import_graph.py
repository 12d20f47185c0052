"""The project's import graph: no cycles, and dependencies point one way (DESIGN.md, "Layers and seams").

    gristmill.core                      the contract: storage, layout, runtime, stats; imports nothing above it
    gristmill.stages.base               the stage contract; imports only gristmill.core
    gristmill.stages / dedup / mixtures stages; never the orchestrator (gristmill.pipeline) nor ray
    gristmill.pipeline                  the orchestrator: plan, run, executors, CLI, report; may import anything

Every import counts, at module level or inside a function, and importing a module also runs its parent
packages' ``__init__``: both are edges.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Installed name of each top-level folder (pyproject's package-dir).
PACKAGE_DIRS = {"gristmill": "gristmill", "pipeline": "gristmill.pipeline", "stages": "gristmill.stages",
                "dedup": "gristmill.dedup", "mixtures": "gristmill.mixtures"}
BELOW_THE_ORCHESTRATOR = ("gristmill.stages", "gristmill.dedup", "gristmill.mixtures")


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    parts = [PACKAGE_DIRS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1][: -len(".py")]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in PACKAGE_DIRS for p in (REPO / folder).rglob("*.py")}


@functools.cache
def syntax_tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), str(path))


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Project modules and top-level third-party packages that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(syntax_tree(path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "gristmill":
                found.add(name.split(".")[0])
                continue
            while name and name not in modules:  # ``from pkg import function`` -> pkg
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        edges = {m for m in imports_of(path, set(modules)) if m in modules}
        parent = name.rpartition(".")[0]
        while parent:  # importing a module runs its packages' __init__ first
            edges.add(parent)
            parent = parent.rpartition(".")[0]
        graph[name] = edges - {name}
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively: the components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def forbidden_edges() -> list[str]:
    modules = project_modules()
    names = set(modules)
    found = []
    for name, path in sorted(modules.items()):
        targets = imports_of(path, names)
        if name.startswith("gristmill.core"):
            bad = {t for t in targets if t.startswith("gristmill") and not t.startswith("gristmill.core")}
        elif name == "gristmill.stages.base" or name.startswith(BELOW_THE_ORCHESTRATOR):
            bad = {t for t in targets if t in ("ray", "gristmill") or t.startswith("gristmill.pipeline")}
        else:
            continue
        found += [f"{name} -> {t}" for t in sorted(bad)]
    return found


# Parsed while the test session is collected: CPython 3.11.7's AST validator can fail with "AST constructor recursion
# depth mismatch" (fixed in 3.11.8) in an interpreter that hundreds of tests (threads, recursion-limit changes) ran in.
import_graph()


def test_the_graph_is_read_from_the_sources():
    graph = import_graph()
    assert "gristmill.pipeline.run" in graph and "gristmill.core.storage" in graph["gristmill.pipeline.run"]
    assert "gristmill.stages.base" in graph["gristmill.dedup.stages"]


def test_no_import_cycles():
    cycles = strongly_connected(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(", ".join(sorted(c)) for c in cycles)


def test_dependencies_point_down_only():
    bad = forbidden_edges()
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def test_a_cycle_and_a_forbidden_edge_are_found(tmp_path):
    """The checks themselves: a two-module cycle is a component, a stage importing ray is refused."""
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [{"a", "b"}]
    stage = tmp_path / "stage.py"
    stage.write_text("def f():\n    import ray\n    from gristmill.pipeline.run import run_plan\n")
    assert imports_of(stage, {"gristmill.pipeline.run"}) == {"ray", "gristmill.pipeline.run"}
