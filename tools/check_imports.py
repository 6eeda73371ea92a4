"""
Print the import cycles of the twisted_hooks package; exit 1 if there is any.

Every module of the package is parsed with :mod:`ast` (nothing is imported), and every
import counts: at module level, under ``if TYPE_CHECKING:``, and inside functions. An
edge goes from a module to each package module it imports (``from twisted_hooks.x import
y`` counts as an import of ``twisted_hooks.x.y`` when that is a module, else of
``twisted_hooks.x``); importing a module also imports its packages' ``__init__``, but
those implicit edges are left out: a package ``__init__`` re-exporting its modules is not
a cycle. Each strongly connected component of more than one module (or a module importing
itself) is printed as one line, with one cycle through it::

    python tools/check_imports.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "twisted_hooks"


def modules(package_dir: Path) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    found: dict[str, Path] = {}
    base = package_dir.parent
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(base).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            parts = module.split(".")
            keep = len(parts) - node.level + (1 if is_package else 0)
            base = ".".join(parts[:keep])
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        names = [f"{target}.{alias.name}" for alias in node.names]
        yield from (name for name in names if name in known)
        if not all(name in known for name in names):
            yield target  # some imported names are defined in the module itself


def graph(package_dir: Path) -> dict[str, set[str]]:
    """The import graph: each module to the package modules it imports."""
    known = modules(package_dir)
    names = set(known)
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            for target in _imported(node, name, is_package, names):
                if target in known and target != name:
                    edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with a cycle (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
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
                    work.append((child, iter(sorted(edges[child]))))
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
                    found.append(sorted(component))
    return sorted(found)


def one_cycle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the first module of ``component``, as a path."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for child in sorted(edges[node] & members):
            if child == start:
                return [*paths[node], start]
            if child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return component


def main(argv: list[str]) -> int:
    """Check the package (or the directory given); print the cycles; 1 if any."""
    package_dir = Path(argv[1]) if len(argv) > 1 else ROOT / PACKAGE
    edges = graph(package_dir)
    found = cycles(edges)
    for component in found:
        path = " -> ".join(one_cycle(component, edges))
        print(f"import cycle among {len(component)} modules: {path}")
        print(f"  all of them: {', '.join(component)}")
    if found:
        print(f"{len(found)} import cycle(s) in {package_dir.name}")
        return 1
    print(f"no import cycles in {package_dir.name} ({len(edges)} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
