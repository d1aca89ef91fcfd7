"""The package's import graph has no cycle, and every module imports on its own.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import`` of a mersdk
module, at module level or inside a function (a deferred import that runs back up is still a helper
in the wrong layer), except those under ``if TYPE_CHECKING:``, which never run. ``from pkg import
name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "mersdk"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST):
    """Every node except the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(name: str, path: Path) -> set[str]:
    is_pkg = path.name == "__init__.py"
    here = name if is_pkg else name.rpartition(".")[0]
    out = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = here.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in MODULES else base)
    # an import of a.b.c also runs a and a.b, but those edges say nothing about layering
    return {m for m in out if m in MODULES and m != name}


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(name, path) for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_the_graph_reader_sees_imports_and_cycles():
    # the reader is what the no-cycle test trusts: check it on known edges and a made-up cycle
    g = import_graph()
    assert "mersdk.pipeline" in g["mersdk.recognizer"]
    assert "mersdk.backends.base" in g["mersdk.backends.torch_backend"]
    assert "mersdk.recognizer" not in g["mersdk"]  # only under TYPE_CHECKING, or lazily by name
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


# the extension's stub and scripts meant to run as __main__ are not importable library modules
SKIP = {"mersdk.__main__"}


@pytest.mark.parametrize("name", [n for n in MODULES if n not in SKIP])
def test_each_module_imports_alone(name):
    r = subprocess.run(
        [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=300
    )
    if r.returncode and "No module named" in r.stderr and "mersdk" not in r.stderr.splitlines()[-1]:
        pytest.skip(f"an optional dependency is missing: {r.stderr.splitlines()[-1]}")
    assert r.returncode == 0, r.stderr
