"""The layering README "Layout" describes, checked from the import statements of the production code.

Every top-level package (a folder with `__init__.py`, tests aside) is parsed, imports inside functions
included: Dagster is imported only in orchestration/, its private modules only in the one module that
wraps the unavoidable uses (pinned to the installed version by its own test), and the package graph has
no cycle, every import pointing down the layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.settings import PROJECT_ROOT

# Lowest first; a package may import only packages before it (README "Layout" explains each one).
LAYERS = ("infra", "assets", "serving", "offline", "batch", "quality", "streaming", "eventlog", "orchestration")
PRIVATE_DAGSTER_WRAPPER = "orchestration/dagster_internals.py"  # tests/operate/test_dagster_internals.py pins it
PACKAGES = tuple(sorted(p.name for p in PROJECT_ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"))


def _imports(path: Path) -> list[str]:
    """The absolute module names a file imports (relative imports stay in their package)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules() -> dict[Path, list[str]]:
    """Every production module (relative to the project) and what it imports."""
    return {path.relative_to(PROJECT_ROOT): _imports(path)
            for package in PACKAGES for path in sorted((PROJECT_ROOT / package).rglob("*.py"))}


def _package_edges() -> dict[tuple[str, str], list[str]]:
    """(importing package, imported package) -> the modules with such an import."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, imports in _modules().items():
        for name in imports:
            top = name.split(".")[0]
            if top in PACKAGES and top != module.parts[0]:
                edges.setdefault((module.parts[0], top), []).append(str(module))
    return edges


def _cycles(edges) -> list[list[str]]:
    """The package cycles of the graph, each once, as a path back to its first package."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found: set[tuple[str, ...]] = set()

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                start = path.index(min(path))
                found.add(tuple(path[start:] + path[:start]))
            elif nxt not in path and nxt > path[0]:
                walk([*path, nxt])

    for package in sorted(graph):
        walk([package])
    return [[*cycle, cycle[0]] for cycle in sorted(found)]


def test_every_package_has_a_layer():
    assert sorted(LAYERS) == sorted(PACKAGES), "add the new package to LAYERS and README \"Layout\""


def test_the_code_a_cluster_imports_holds_every_package():
    """Spark executors and Flink TaskManagers import the platform from the zip infra/code_package.py builds."""
    from infra.code_package import PACKAGES as SHIPPED

    assert sorted(SHIPPED) == sorted(PACKAGES), "add the new package to infra/code_package.py PACKAGES"


def test_no_benchmark_script_shadows_a_package():
    """A script runs with its folder first on sys.path: benchmarks/quality.py would hide the quality package."""
    scripts = {p.stem for p in (PROJECT_ROOT / "benchmarks").glob("*.py")}
    assert not scripts & set(PACKAGES), f"rename benchmarks/{sorted(scripts & set(PACKAGES))}.py"


def _importing(wanted) -> dict[str, list[str]]:
    """Module -> the names it imports that `wanted(module, name)` picks, for the modules with any."""
    found = {str(module): [name for name in imports if wanted(module, name)] for module, imports in _modules().items()}
    return {module: names for module, names in found.items() if names}


def test_dagster_is_imported_only_in_orchestration():
    assert _importing(lambda module, name: name.split(".")[0] in ("dagster", "dagster_pyspark")
                      and module.parts[0] != "orchestration") == {}


def test_private_dagster_modules_are_imported_only_by_their_wrapper():
    assert _importing(lambda module, name: name.startswith(("dagster._", "dagster_pyspark._"))
                      and str(module) != PRIVATE_DAGSTER_WRAPPER) == {}


def test_the_package_graph_has_no_cycle():
    edges = _package_edges()
    assert [" -> ".join(cycle) for cycle in _cycles(edges)] == []


def test_every_import_points_down_the_layers():
    upward = {f"{a} -> {b}": modules for (a, b), modules in _package_edges().items()
              if LAYERS.index(b) > LAYERS.index(a)}
    assert upward == {}


@pytest.mark.parametrize("edges, cycles", [
    ({("a", "b"), ("b", "a")}, [["a", "b", "a"]]),
    ({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}, [["a", "b", "c", "a"]]),
    ({("a", "b"), ("b", "c"), ("a", "c")}, []),
])
def test_cycles_are_found_whatever_their_length(edges, cycles):
    assert _cycles(edges) == cycles
