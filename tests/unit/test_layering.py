"""The dependency direction: `shared/leadflow` never reaches a service, not even by name.

Services build on the common library; the `leadflow` command (`leadflow_cli`) builds on
both. A module of `shared/leadflow` that imported a service — with an import statement,
or by handing its name to `importlib` — would hide a dependency from mypy and from the
import graph, so every module's syntax tree is read: its imports, and every string that
names a service module (docstrings aside). Naming `leadflow_cli` as the program a child
process runs (`python -m leadflow_cli`) is a process boundary, not an import.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared" / "leadflow"
# The services' packages, and the command that imports them all.
ABOVE = ("leadflow_intake", "leadflow_scoring", "leadflow_router", "leadflow_sla", "leadflow_cli")
_NAMED = re.compile(rf"^({'|'.join(ABOVE)})(\.[\w.]+)?(:\w+)?$")


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _program_names(tree: ast.AST) -> set[int]:
    """Strings that follow `-m` in an argument list: the module a child process runs."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            for flag, name in zip(node.elts, node.elts[1:], strict=False):
                if isinstance(flag, ast.Constant) and flag.value == "-m":
                    found.add(id(name))
    return found


def violations(source: str) -> list[str]:
    """Where a module's source imports, or names, a package above the common library."""
    tree = ast.parse(source)
    skipped = _docstrings(tree) | _program_names(tree)
    found: list[str] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in skipped
            and _NAMED.match(node.value.strip())
        ):
            modules = [node.value.strip()]
        found += [
            f"line {getattr(node, 'lineno', 0)}: {module}"
            for module in modules
            if module.split(".")[0].split(":")[0] in ABOVE
        ]
    return found


def test_no_module_of_the_common_library_reaches_a_service() -> None:
    modules = sorted(SHARED.rglob("*.py"))
    assert len(modules) > 50  # the walk sees the library, not an empty folder
    found = {
        str(path.relative_to(ROOT)): problems
        for path in modules
        if (problems := violations(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import leadflow_intake.normalize\n", ["line 1: leadflow_intake.normalize"]),
        ("from leadflow_sla.reporting import commands\n", ["line 1: leadflow_sla.reporting"]),
        (
            "import importlib\nm = importlib.import_module('leadflow_scoring.replay')\n",
            ["line 2: leadflow_scoring.replay"],
        ),
        (
            'APPS = {"router": ("leadflow_router.app", "create_app")}\n',
            ["line 1: leadflow_router.app"],
        ),
        ("app = 'leadflow_cli.app:app'\n", ["line 1: leadflow_cli.app:app"]),
        ("def f():\n    from leadflow_cli.app import main\n", ["line 2: leadflow_cli.app"]),
    ],
)
def test_the_walk_finds_imports_and_names(source: str, expected: list[str]) -> None:
    assert violations(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        '"""Replays through `leadflow_scoring.replay`."""\n',
        "import leadflow.config\nfrom leadflow import topics\n",
        "argv = [python, '-m', 'leadflow_cli', 'intake']\n",
        "name = 'leadflow_sla is the SLA monitor'\n",
    ],
)
def test_docs_the_library_and_child_processes_are_not_imports(source: str) -> None:
    assert violations(source) == []
