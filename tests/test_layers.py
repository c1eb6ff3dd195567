"""The package follows the data flow: a stage imports only the stages before it.

source (``audio``) → ring buffer, frames, features (``stream``) → ``model`` →
smoothing, segments, alerts (``monitor``) → ``sinks`` → ``engine``/``worker`` →
``web``/``cluster``; ``training`` and the command line sit on top. Every import
counts, also those inside functions.
"""

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "server"

# Lowest first; a module may import its own layer and those below it.
LAYERS = [
    ("server.config", "server.subprocesses"),
    ("server.audio",),
    ("server.stream",),
    ("server.model",),
    ("server.monitor",),
    ("server.sinks",),
    ("server.schemas", "server.source_kinds", "server.source_specs", "server.settings", "server.engine",
     "server.worker"),
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
