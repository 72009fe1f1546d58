"""The shape the codebase keeps: short modules and short functions outside the tests.

A function may run longer with a one-line reason in a comment starting `# long:` on
the line above its `def` (or its decorators).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("services", "statestore", "load")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

SOURCES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_module_is_longer_than_400_lines(path: Path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_MODULE_LINES, f"{_name(path)} has {lines} lines"


@pytest.mark.parametrize("path", SOURCES, ids=_name)
def test_no_function_is_longer_than_60_lines_without_a_reason(path: Path):
    source = path.read_text()
    lines = source.splitlines()
    too_long = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = node.end_lineno - node.lineno + 1
        reason = lines[first - 2].strip() if first >= 2 else ""
        if length > MAX_FUNCTION_LINES and not reason.startswith("# long:"):
            too_long.append(f"{node.name} (line {node.lineno}): {length} lines")
    assert not too_long, f"{_name(path)}: {too_long}"
