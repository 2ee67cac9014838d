"""The structure of collapse_lib: no module imports a module that imports it back (issue 26).

The imports are read from the source with ``ast`` (every import statement, also those inside
functions and under ``if TYPE_CHECKING:``: a type hint is a dependency too). ``from . import x``
and ``from .pkg import x`` count as importing the submodule ``x`` when there is one, else the
package's ``__init__``; a package's ``__init__`` importing its own submodules is how packages
are built and is not counted as a dependency of the submodules on the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "collapse_lib"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _imports(name: str, modules: dict[str, Path]) -> set[str]:
    """The collapse_lib modules that module ``name`` imports."""
    tree = ast.parse(modules[name].read_text())
    base = name if _is_package(name, modules) else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                mod = ".".join(anchor + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:   # `import a.b.c` of a function-free path
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                found.add(target)
    if _is_package(name, modules):   # a package importing its own submodules builds itself
        found = {t for t in found if not t.startswith(name + ".")}
    return found


GRAPH = {name: _imports(name, _modules()) for name in _modules()}


def test_the_import_graph_is_read():
    assert "collapse_lib.simulate.state" in GRAPH["collapse_lib.simulate.engine"]
    assert "collapse_lib.simulate.state" in GRAPH["collapse_lib.simulate.steppers"]
    assert "collapse_lib._validate" in GRAPH["collapse_lib.theory"]


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_one_that_imports_it_back(name):
    back = sorted(other for other in GRAPH[name] if name in GRAPH.get(other, ()))
    assert not back, f"{name} and {back} import each other"


def test_no_import_cycle_at_all():
    """Stronger: the modules' import graph has no cycle of any length."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)
