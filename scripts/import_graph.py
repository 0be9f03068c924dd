"""The project's import graph, and the layering rules it must keep.

Layers, bottom first; a module may import its own layer and the ones below, never above:

    0  handlers, sentiment_client      what runs in a worker / what a user installs
    1  scripts.registry, scripts.nsmc, scripts.inprocess   paths + model list, data, in-process
    2  scripts.training                 makes artifacts
    3  scripts.packaging                packs them (reaches trainers through the registry only)
    4  scripts.ops                      runs and operates the server
    5  scripts.deploy                   image and cluster helpers
    6  benchmarks, web                  measure and show

Also: no import cycles, and no project import inside a function (a hidden import is how a cycle
or a layering break usually slips in; the registry's `entry_point` strings are the one sanctioned
late binding).  Heavy third-party imports inside functions are not this tool's business.

    .venv/bin/python -m scripts.import_graph          # violations (exit 1) or "ok"
    .venv/bin/python -m scripts.import_graph --dot    # the graph, for graphviz
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from scripts.registry import ROOT

PACKAGES = ("handlers", "sentiment_client", "scripts", "benchmarks", "web")
LAYERS: tuple[tuple[str, ...], ...] = (
    ("handlers", "sentiment_client"),
    ("scripts.registry", "scripts.nsmc", "scripts.inprocess"),
    ("scripts.training",),
    ("scripts.packaging",),
    ("scripts.ops",),
    ("scripts.deploy", "scripts.import_graph"),
    ("benchmarks", "web"),
)


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    in_function: bool


def layer_of(module: str) -> int:
    """The layer index of `module` (its longest matching prefix in LAYERS)."""
    best, best_length = len(LAYERS), -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, importer: str) -> list[Import]:
    """Project imports in `source`, each marked with whether it sits inside a function."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                # `from scripts.ops import manage` imports the module scripts.ops.manage
                names = [f"{child.module}.{alias.name}" for alias in child.names]
            for name in names:
                if name.split(".")[0] in PACKAGES:
                    found.append(Import(importer, name, child.lineno, in_function))
            visit(child, nested)

    visit(ast.parse(source), False)
    return found


def collect(root: Path = ROOT) -> tuple[set[str], list[Import]]:
    """Every project module under `root` and every project import between them."""
    modules: set[str] = set()
    edges: list[Import] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = module_name(path, root)
            modules.add(name)
            edges += imports_of(path.read_text(encoding="utf-8"), name)
    return modules, edges


def resolve(name: str, modules: set[str]) -> str | None:
    """The module an imported name lands in (`scripts.registry.MODELS` -> scripts.registry)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def violations(modules: set[str], edges: Iterable[Import]) -> list[str]:
    """What breaks the rules: upward imports, imports inside functions, cycles."""
    found: list[str] = []
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for edge in edges:
        target = resolve(edge.imported, modules)
        if target is None or target == edge.importer:
            continue
        where = f"{edge.importer}:{edge.line} imports {target}"
        if edge.in_function:
            found.append(f"{where} inside a function")
        if layer_of(target) > layer_of(edge.importer):
            found.append(f"{where}, a higher layer ({layer_of(target)} > "
                         f"{layer_of(edge.importer)})")  # fmt: skip
        graph[edge.importer].add(target)
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected part of `graph` that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part) + [sorted(part)[0]])

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def dot(modules: set[str], edges: Iterable[Import]) -> str:
    lines = ["digraph imports {", "  rankdir=BT;"]
    pairs = {(e.importer, resolve(e.imported, modules)) for e in edges}
    lines += [f'  "{a}" -> "{b}";' for a, b in sorted(pairs) if b is not None and a != b]
    return "\n".join(lines + ["}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dot", action="store_true", help="print the graph in graphviz dot")
    args = parser.parse_args(argv)
    modules, edges = collect()
    if args.dot:
        print(dot(modules, edges))
        return 0
    broken = violations(modules, edges)
    print("\n".join(broken) if broken else f"ok: {len(modules)} modules, {len(edges)} imports")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
