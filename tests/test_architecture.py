"""Layering: services/ is framework-free and knows nothing of the UI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICES = Path(__file__).resolve().parent.parent / "services"
FORBIDDEN = {"reflex", "fastapi", "starlette", "watheeq_ui"}


def imported_roots(source: str) -> set[str]:
    """Top-level package names an module imports (absolute imports; relative ones stay inside)."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            roots.add(node.args[0].value.split(".")[0])
    return roots


def service_modules() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def test_services_has_modules_to_check() -> None:
    names = {p.relative_to(SERVICES).as_posix() for p in service_modules()}
    assert {"models.py", "accounts.py", "clients.py", "cli.py"} <= names


@pytest.mark.parametrize("path", service_modules(), ids=lambda p: p.relative_to(SERVICES).as_posix())
def test_service_module_imports_no_web_framework_or_ui(path: Path) -> None:
    bad = imported_roots(path.read_text(encoding="utf-8")) & FORBIDDEN
    assert not bad, f"services/{path.relative_to(SERVICES)} imports {sorted(bad)}"


@pytest.mark.parametrize(
    "source",
    [
        "import reflex as rx",
        "from fastapi import APIRouter",
        "import starlette.requests",
        "from watheeq_ui.state import AuthState",
        "def f():\n    import reflex\n",
        "import importlib\nimportlib.import_module('fastapi')",
    ],
)
def test_the_import_walker_catches_every_import_form(source: str) -> None:
    assert imported_roots(source) & FORBIDDEN


def test_the_import_walker_ignores_relative_and_similar_names() -> None:
    assert not imported_roots("from . import models\nfrom .reflex import x\nimport reflexive_lib\n") & FORBIDDEN
