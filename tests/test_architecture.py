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
    assert {"models/__init__.py", "clients.py", "cli.py", "tenancy.py"} <= names


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


# --------------------------------------------------------------------------- tenancy
#
# A query scoped by hand is one typo from showing another firm's rows, so every tenant
# condition is built by services/tenancy.py; the walk finds ``<anything>.tenant_id ==``.

TENANCY = "tenancy.py"


def hand_written_tenant_conditions(source: str) -> list[int]:
    """Lines comparing a ``tenant_id`` attribute (model, alias or ``table.c``) with ``==``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq) for op in node.ops):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Attribute) and o.attr == "tenant_id" for o in operands):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    "path",
    [p for p in service_modules() if p.relative_to(SERVICES).as_posix() != TENANCY],
    ids=lambda p: p.relative_to(SERVICES).as_posix(),
)
def test_no_service_scopes_a_query_by_hand(path: Path) -> None:
    lines = hand_written_tenant_conditions(path.read_text(encoding="utf-8"))
    assert not lines, f"services/{path.relative_to(SERVICES)} lines {lines}: use services.tenancy (owned_by, owned_join, ...)"


@pytest.mark.parametrize(
    "source",
    [
        "q.where(Call.tenant_id == tenant_id)",
        "sa.and_(Client.id == Call.client_id, Client.tenant_id == tid)",
        "table.c.tenant_id == 1",
        "tenant_id == Call.tenant_id",
        "Call.id == 1 == Call.tenant_id",
    ],
)
def test_the_tenancy_walker_catches_every_spelling(source: str) -> None:
    assert hand_written_tenant_conditions(source)


def test_the_tenancy_walker_accepts_the_helpers_and_other_comparisons() -> None:
    source = "q.where(owned_by(Call, tenant_id))\nTenant.id == tenant_id\nactor.tenant_id != tenant_id\n"
    assert hand_written_tenant_conditions(source) == []


# --------------------------------------------------------------------------- sessions in the UI
#
# Every Reflex event handler that reaches a service acts for a user, so it must first
# resolve the session on the server through the one helper (watheeq_ui.state.auth
# principal_for_page). The walk follows a handler's own private methods and the module's
# functions in source order, and fails at the first service call met before the helper.

UI = Path(__file__).resolve().parent.parent / "watheeq_ui"
SESSION_HELPER = "principal_for_page"
# Inside AuthState the helper's own parts resolve the session.
AUTH_STATE_HELPERS = {"_check", "_resume", "principal"}
# Handlers that exist to start or end a session, so there is none to check before: signing
# in and out, and the public set-password page (its one-time link is the credential).
SESSION_LIFECYCLE = {
    ("AuthState", "login"),
    ("AuthState", "logout"),
    ("SetPasswordState", "check"),
    ("SetPasswordState", "submit"),
}
# Service modules whose names are data, not operations.
NOT_OPERATIONS = {"models", "errors"}


def ui_state_modules() -> list[Path]:
    return sorted([*(UI / "pages").rglob("*.py"), *(UI / "state").rglob("*.py"), *(UI / "components").rglob("*.py")])


def _service_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to service modules, and to service functions, by the module's imports."""
    modules: set[str] = set()
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "services":
            for alias in node.names:
                name = alias.asname or alias.name
                if node.module == "services":
                    if alias.name not in NOT_OPERATIONS:
                        modules.add(name)
                elif node.module.split(".")[-1] not in NOT_OPERATIONS and alias.name[:1].islower():
                    functions.add(name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "services":
                    modules.add((alias.asname or alias.name).split(".")[0])
    return modules, functions


def _call_root(func: ast.expr) -> str | None:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None


def _is_state_class(node: ast.ClassDef) -> bool:
    return any(
        (isinstance(b, ast.Attribute) and b.attr == "State") or (isinstance(b, ast.Name) and b.id.endswith("State")) for b in node.bases
    )


class _HandlerWalk(ast.NodeVisitor):
    def __init__(self, cls: ast.ClassDef, functions: dict[str, ast.AST], modules: set[str], service_functions: set[str]) -> None:
        self.methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
        self.cls_name = cls.name
        self.functions = functions
        self.modules = modules
        self.service_functions = service_functions
        self.resolved = False
        self.violations: list[str] = []
        self.stack: list[str] = []

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        is_self_call = isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"
        if name == SESSION_HELPER or (self.cls_name == "AuthState" and is_self_call and name in AUTH_STATE_HELPERS):
            self.resolved = True
            return
        root = _call_root(func)
        is_service = (isinstance(func, ast.Attribute) and root in self.modules) or (
            isinstance(func, ast.Name) and func.id in self.service_functions
        )
        if is_service and not self.resolved:
            self.violations.append(f"{' -> '.join(self.stack)}: {ast.unparse(func)}() (line {node.lineno})")
            return
        target = None
        if is_self_call and name in self.methods and name not in self.stack:
            target = self.methods[name]
        elif isinstance(func, ast.Name) and func.id in self.functions and func.id not in self.stack:
            target = self.functions[func.id]
        if target is not None:
            self.stack.append(name or "?")
            for stmt in target.body:  # type: ignore[attr-defined]
                self.visit(stmt)
            self.stack.pop()


def handlers_reaching_services_without_the_session_helper(source: str) -> list[str]:
    """``Class.handler: call`` for each service call an event handler makes before the helper."""
    tree = ast.parse(source)
    modules, service_functions = _service_names(tree)
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    found: list[str] = []
    for cls in [n for n in tree.body if isinstance(n, ast.ClassDef) and _is_state_class(n)]:
        for method in cls.body:
            if not isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef) or method.name.startswith("_"):
                continue
            if (cls.name, method.name) in SESSION_LIFECYCLE:
                continue
            walk = _HandlerWalk(cls, functions, modules, service_functions)
            walk.stack.append(f"{cls.name}.{method.name}")
            for stmt in method.body:
                walk.visit(stmt)
            found.extend(walk.violations)
    return found


def test_the_ui_has_states_to_check() -> None:
    names = {p.relative_to(UI).as_posix() for p in ui_state_modules()}
    assert {"state/auth.py", "pages/calls/state.py", "pages/whatsapp/state.py", "components/softphone/state.py"} <= names


@pytest.mark.parametrize("path", ui_state_modules(), ids=lambda p: p.relative_to(UI).as_posix())
def test_every_ui_event_resolves_the_session_before_reaching_a_service(path: Path) -> None:
    assert handlers_reaching_services_without_the_session_helper(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "body",
    [
        # Straight to the database.
        "    def load(self):\n        with db.session_scope() as s:\n            pass\n",
        # A service before the helper.
        "    async def load(self):\n        calls.get_call_history()\n        p = await principal_for_page(self)\n",
        # Through a private method.
        "    async def load(self):\n        await self._fetch()\n    async def _fetch(self):\n        calls.get_call_history()\n",
        # Through a module function, and a service function imported by name.
        "    def load(self):\n        helper()\n",
        # The principal of another state read directly, as the old phone did.
        "    async def load(self):\n        p = (await self.get_state(AuthState))._principal()\n        calls.log_call(p)\n",
    ],
)
def test_the_session_walker_catches_a_handler_that_skips_the_helper(body: str) -> None:
    source = (
        "import reflex as rx\nfrom services import calls, db\nfrom services.call_center.softphone import apply_softphone_event\n"
        "def helper():\n    apply_softphone_event()\n"
        f"class PageState(rx.State):\n{body}"
    )
    assert handlers_reaching_services_without_the_session_helper(source)


def test_the_session_walker_accepts_the_helper_first_and_ignores_data_classes() -> None:
    source = (
        "import reflex as rx\nfrom services import calls, db\nfrom services.models import CallFilters\n"
        "class PageState(rx.State):\n"
        "    async def load(self):\n        p = await principal_for_page(self)\n        await self._fetch(p)\n"
        "    async def _fetch(self, p):\n        with db.session_scope() as s:\n            calls.get_call_history(filters=CallFilters())\n"
        "    def set_note(self, value: str):\n        self.note = CallFilters()\n"
    )
    assert handlers_reaching_services_without_the_session_helper(source) == []
