"""Print mmattr's module import graph and fail on any import circle.

Every import counts, the ones inside functions too (a deferred import is still a dependency
that can close a circle); only ``if TYPE_CHECKING:`` blocks are left out. Importing
``a.b.c`` also runs the ``__init__`` of ``a.b`` (unless the importer lives inside ``a.b``
already), so that edge counts as well.

Two graphs are checked: modules, and packages (each module folded into its top-level
subpackage of mmattr, e.g. ``mmattr.explainers``), so ``explainers`` ↔ ``metrics`` is a
circle even when no two single modules close one.

    python tools/import_graph.py            # the package graph, layer by layer
    python tools/import_graph.py --modules  # every module edge
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "mmattr"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool,
             from_names: list[tuple[str, str]] | None = None) -> set[str]:
    found: set[str] = set()
    names = from_names if from_names is not None else []
    package = module if is_package else module.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            for alias in node.names:  # `from pkg import submodule`, or a name of pkg's __init__
                found.add(f"{target}.{alias.name}")
                names.append((target, alias.name))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def module_graph() -> dict[str, set[str]]:
    """mmattr module → the mmattr modules it imports (and the packages that import runs)."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        edges: set[str] = set()
        from_names: list[tuple[str, str]] = []
        found = _imports(tree, name, path.name == "__init__.py", from_names)
        for package, attr in from_names:
            # `from . import register_adapter` inside the package reads its half-run __init__:
            # a circle with the __init__ that imports this module.
            if (package in files and f"{package}.{attr}" not in files and package != name
                    and name.startswith(package + ".")):
                edges.add(package)
        for target in found:
            if target not in files:
                continue
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # parent packages run first, unless we are in them
                prefix = ".".join(parts[:i])
                if prefix in files and not (name == prefix or name.startswith(prefix + ".")):
                    edges.add(prefix)
            if not (name == target or name.startswith(target + ".")):  # not our own package
                edges.add(target)
        graph[name] = edges
    return graph


def package_of(module: str) -> str:
    """``mmattr.explainers.cam`` → ``mmattr.explainers``; top-level modules stay themselves."""
    return ".".join(module.split(".")[:2])


def package_graph(graph: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    graph = module_graph() if graph is None else graph
    out: dict[str, set[str]] = {}
    for src, targets in graph.items():
        p = package_of(src)
        out.setdefault(p, set())
        if p == "mmattr":  # the root __init__ re-exports everything: it is the top, not a node
            continue
        out[p].update(package_of(t) for t in targets if package_of(t) != p)
    out["mmattr"] = {package_of(t) for t in graph.get("mmattr", set())} - {"mmattr"}
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return sorted(found)


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Nodes by layer: layer 0 imports nothing of mmattr, layer k only layers below k."""
    level: dict[str, int] = {}

    def depth(v: str, seen: frozenset = frozenset()) -> int:
        if v not in level:
            deps = [w for w in graph.get(v, ()) if w not in seen]
            level[v] = 1 + max((depth(w, seen | {v}) for w in deps), default=-1)
        return level[v]

    for v in graph:
        depth(v)
    out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for v, k in level.items():
        out[k].append(v)
    return [sorted(row) for row in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="print every module edge")
    args = parser.parse_args(argv)
    mods = module_graph()
    pkgs = package_graph(mods)
    shown = mods if args.modules else pkgs
    for k, row in enumerate(layers(shown)):
        print(f"layer {k}:")
        for v in row:
            deps = sorted(shown[v])
            print(f"  {v.removeprefix('mmattr.') or 'mmattr'}"
                  + (f" → {', '.join(d.removeprefix('mmattr.') for d in deps)}" if deps else ""))
    bad = cycles(mods) + cycles(pkgs)
    for comp in bad:
        print("CIRCLE: " + " ↔ ".join(comp), file=sys.stderr)
    print(f"{len(mods)} modules, {len(pkgs)} packages, {len(bad)} circles")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
