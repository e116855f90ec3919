"""The package's layering, read from its own imports (module-level and deferred ones alike).

Allowed direction, each layer importing only the layers below it:

    cli → {pipeline, tracks} → {training, evaluation, leaderboard, validation}
        → {models, data, metrics, losses, cards, entries, plots} → {solvers, layers} → {io, errors}

Three rules, each a test: no module imports a layer above its own; the applications one layer
below the pipeline (training, evaluation, leaderboard, validation) never import one another (what
two of them share belongs a layer down); and no two files import each other, directly or around a
loop. The package root (``cfdbench/__init__.py``: the version and a lazy ``open_dataset``) is the
public facade and sits outside the layers.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cfdbench"

LAYERS: dict[str, int] = {
    "cli": 6,
    "__main__": 6,
    "pipeline": 5,
    "tracks": 5,  # benchmark tracks run and published end to end (the linear-solver track)
    "training": 4,
    "evaluation": 4,
    "leaderboard": 4,
    "validation": 4,
    "models": 3,
    "data": 3,
    "metrics": 3,
    "losses": 3,
    "cards": 3,
    "entries": 3,  # the Entry type and the predictions file: written by the pipeline, read by the leaderboard
    "plots": 3,  # figures of a run (evaluation) and of the leaderboard
    "solvers": 2,
    "layers": 2,
    "io": 1,
    "errors": 1,
}
APPLICATIONS = {name for name, rank in LAYERS.items() if rank == 4}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_names(module: str, node: ast.AST) -> list[str]:
    """Every dotted name an import statement may bind, made absolute."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        package = module if modules()[module].name == "__init__.py" else module.rpartition(".")[0]
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [source] + [f"{source}.{alias.name}" for alias in node.names]


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the cfdbench modules it imports (a name resolves to its deepest existing module)."""
    graph = {}
    for module, path in modules().items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in imported_names(module, node):
                while name not in modules() and "." in name:
                    name = name.rpartition(".")[0]
                if name.startswith("cfdbench.") and name != module:
                    targets.add(name)
        graph[module] = frozenset(targets)
    return graph


def layer(module: str) -> str:
    return module.split(".")[1]


def test_every_module_belongs_to_a_layer():
    unplaced = sorted({layer(m) for m in modules() if m != "cfdbench"} - set(LAYERS))
    assert not unplaced, f"place these in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module != "cfdbench"
        for target in targets
        if LAYERS[layer(target)] > LAYERS[layer(module)]
    ]
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


def test_applications_do_not_import_one_another():
    sideways = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module != "cfdbench" and layer(module) in APPLICATIONS
        for target in targets
        if layer(target) in APPLICATIONS and layer(target) != layer(module)
    ]
    assert not sideways, "applications importing one another (move what they share down):\n" + "\n".join(sorted(sideways))


def import_cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
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
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_cycles():
    cycles = import_cycles(import_graph())
    assert not cycles, "modules importing one another:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_loop():
    graph = {"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": frozenset({"b"}), "b": frozenset()}) == []
