"""The package follows the data flow: a stage imports only the stages before it.

source (``audio``) → ring buffer, frames, features (``stream``) → ``model`` →
smoothing, segments, alerts (``monitor``) → ``sinks`` → ``engine``/``worker`` →
``web``/``cluster``; ``training`` and the command line sit on top. Every import
counts, also those inside functions, and no modules may import each other (a circle).
"""

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "server"

# Lowest first; a module may import its own layer and those below it.
LAYERS = [
    ("server.config", "server.subprocesses", "server.cli_errors", "server.heap", "server.lock_files"),
    ("server.audio",),
    ("server.stream",),
    ("server.model",),
    ("server.monitor",),
    ("server.sinks",),
    ("server.schemas", "server.source_kinds", "server.source_specs", "server.settings", "server.engine",
     "server.worker", "server.library"),
    ("server.web", "server.cluster"),
    ("server.training", "server.classify", "server.cli"),
]


def layer_of(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(SERVER.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the ``server`` modules ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)  # from pkg import submodule
    return {m for m in found if m.startswith("server.") and layer_of(m) is not None}


MODULES = sorted(p for p in SERVER.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [module_name(p) for p in MODULES if layer_of(module_name(p)) is None] in ([], ["server"])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_upstream(path):
    name = module_name(path)
    mine = layer_of(name)
    if mine is None:
        return
    upward = sorted(m for m in imports_of(path) if layer_of(m) > mine)
    assert not upward, f"{name} (a {LAYERS[mine][0]} stage) imports downstream {upward}"


def test_cluster_worker_does_not_import_the_web_app():
    assert not [m for m in imports_of(SERVER / "cluster" / "worker.py") if m.startswith("server.web")]


def module_graph() -> dict[str, set[str]]:
    """Each server module → the server modules it imports (a name inside a module counts as that module)."""
    names = {module_name(p): p for p in MODULES}
    graph = {}
    for name, path in names.items():
        targets = set()
        for m in imports_of(path):
            while m not in names:  # ``server.model.fast.get_backbone`` → ``server.model.fast``
                m = m.rpartition(".")[0]
            if m not in (name, "server"):
                targets.add(m)
        graph[name] = targets
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) through each group of modules that import each other."""
    cycles, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        stack, path, on_path = [(start, iter(sorted(graph[start])))], [start], {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                cycle = path[path.index(child):] + [child]
                if not done.intersection(cycle):
                    cycles.append(cycle)
                    done.update(cycle)
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return cycles


def test_import_cycles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """A circle hidden in a function-level import still ties its modules together: none allowed."""
    cycles = import_cycles(module_graph())
    assert not cycles, "server modules that import each other: " + "; ".join(" → ".join(c) for c in cycles)
