"""Imports point one way: services.common <- statestore <- services <- load <- tests.

Walks every module's imports with `ast` (including `importlib.import_module("...")`
and `__import__("...")` with a literal name, so a lazy import by name counts too)
and fails on any edge from a lower layer to a higher one, naming it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "statestore", "load")

# Lowest first; a module may import its own layer and the ones before it.
LAYERS = (
    ("services.common",),
    ("statestore",),
    ("services",),  # services.cli, producer, processor, consumer
    ("load",),
    ("tests",),
)


def layer_of(module: str) -> int | None:
    """Index in LAYERS by the longest matching prefix; None outside the project."""
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_module(name: str, root: Path) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path, root: Path = ROOT) -> Iterator[str]:
    """Every module `path` imports, statically or by a literal name."""
    module = module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                yield submodule if _is_module(submodule, root) else source
        elif isinstance(node, ast.Call) and _imports_by_name(node):
            yield node.args[0].value


def _imports_by_name(call: ast.Call) -> bool:
    function = call.func
    named = (isinstance(function, ast.Attribute) and function.attr == "import_module") or (
        isinstance(function, ast.Name) and function.id in ("import_module", "__import__")
    )
    return (
        named
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
    )


def upward_edges(paths: list[Path], root: Path = ROOT) -> list[str]:
    edges = []
    for path in paths:
        importer = module_name(path, root)
        own = layer_of(importer)
        for imported in imports_of(path, root):
            target = layer_of(imported)
            if own is not None and target is not None and target > own:
                edges.append(f"{importer} -> {imported}")
    return sorted(set(edges))


def project_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_no_module_imports_a_higher_layer():
    edges = upward_edges(project_modules())
    assert edges == [], "upward imports:\n" + "\n".join(edges)


def test_layers_are_ordered_with_common_below_the_services():
    assert layer_of("services.common.config") < layer_of("statestore.store")
    assert layer_of("statestore") < layer_of("services.processor.apply")
    assert layer_of("services.cli") < layer_of("load.chaos") < layer_of("tests.conftest")
    assert layer_of("confluent_kafka") is None


def test_an_upward_import_is_named_even_when_lazy_or_by_name(tmp_path):
    package = tmp_path / "services" / "common"
    package.mkdir(parents=True)
    (tmp_path / "services" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "leaky.py").write_text(
        "import importlib\n"
        "def later():\n"
        "    from statestore import StateStore\n"
        "    return importlib.import_module('load.chaos'), StateStore\n"
    )
    assert upward_edges([package / "leaky.py"], tmp_path) == [
        "services.common.leaky -> load.chaos",
        "services.common.leaky -> statestore",
    ]
