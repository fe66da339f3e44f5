"""The rules package's public surface, and its promise of purity."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rules

RULES_DIR = Path(rules.__file__).parent


def test_exported_members_are_curated_and_sorted() -> None:
    assert rules.__all__ == sorted(rules.__all__)
    for name in rules.__all__:
        assert getattr(rules, name) is not None


# Reading the clock, the network, a database or a logger has no place in pure rules.
FORBIDDEN_METHODS = {"now", "today", "utcnow", "sleep", "getenv", "urlopen", "monotonic"}
FORBIDDEN_FUNCTIONS = {"open", "print", "input", "perf_counter"}
FORBIDDEN_IMPORTS = {"logging", "requests", "httpx", "sqlalchemy", "sqlmodel", "socket", "random"}


def _called(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        if owner == "time" and func.attr == "time":
            return "time.time"  # dt.time(9, 0) is a value, time.time() is the clock
        return func.attr if func.attr in FORBIDDEN_METHODS else ""
    name = func.id if isinstance(func, ast.Name) else ""
    return name if name in FORBIDDEN_FUNCTIONS else ""


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.py")), ids=lambda p: p.name)
def test_rules_modules_do_no_io_and_read_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            assert not _called(node), f"{path.name}:{node.lineno} calls {_called(node)}()"
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_IMPORTS, f"{path.name} imports {name}"


def test_modules_stay_small() -> None:
    for path in RULES_DIR.glob("*.py"):
        assert len(path.read_text(encoding="utf-8").splitlines()) <= 300, path.name
