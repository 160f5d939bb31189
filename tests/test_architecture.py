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
        # Work handed to offloop by reference (``offloop.call(service, ...)``, ``offloop.run(fn, ...)``)
        # is judged as a call of that reference.
        if _is_offloop(node) and node.args and isinstance(node.args[0], ast.Attribute | ast.Name):
            func = node.args[0]
            name = func.attr if isinstance(func, ast.Attribute) else func.id
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
        # Handed to offloop before the helper.
        "    async def load(self):\n        await offloop.call(calls.get_call_history, None)\n        p = await principal_for_page(self)\n",
        "    async def load(self):\n        await offloop.run(helper)\n",
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


# --------------------------------------------------------------------------- no blocking in the UI
#
# A backend worker serves all its browsers from one event loop: database and service work in
# a page's state runs only through watheeq_ui/state/offloop.py (``await offloop.run(fn, ...)``
# or ``await offloop.call(service, principal, ...)``), never called directly in a state's
# method, sync or async (Reflex runs sync handlers on the loop too). Service modules that are
# pure functions (rules, formats, the live bus's vocabulary) are fine anywhere.

OFFLOOP = {"run", "call"}
PURE_SERVICE_MODULES = {"authz", "timestamps", "phones", "config", "live", "live_sources", "models", "errors", "gateway", "failures"}
PURE_SERVICE_FUNCTIONS = {"leg_key"}


def _blocking_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to service modules and functions that may touch the database."""
    modules: set[str] = set()
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == "services":
            for alias in node.names:
                name = alias.asname or alias.name
                if node.module == "services":
                    if alias.name not in PURE_SERVICE_MODULES:
                        modules.add(name)
                elif (
                    node.module.split(".")[-1] not in PURE_SERVICE_MODULES
                    and alias.name[:1].islower()
                    and alias.name not in PURE_SERVICE_FUNCTIONS
                ):
                    functions.add(name)
    return modules, functions


def _is_offloop(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr in OFFLOOP and isinstance(func.value, ast.Name) and func.value.id == "offloop"


class _BlockingWalk(ast.NodeVisitor):
    """Direct service calls, ``asyncio.to_thread`` and calls of module functions that make
    them, inside a state's methods; what is handed to offloop (a reference) is not a call."""

    def __init__(self, modules: set[str], functions: set[str], blocking_helpers: set[str]) -> None:
        self.modules = modules
        self.functions = functions
        self.helpers = blocking_helpers
        self.found: list[ast.Call] = []

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        root = _call_root(func)
        if isinstance(func, ast.Attribute) and root in self.modules:
            self.found.append(node)
        elif isinstance(func, ast.Name) and (func.id in self.functions or func.id in self.helpers):
            self.found.append(node)
        elif isinstance(func, ast.Attribute) and func.attr == "to_thread" and root == "asyncio":
            self.found.append(node)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        # A function defined inside a method is work handed to offloop by name; calling it
        # directly is caught as a call of a blocking helper.
        return

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]
    visit_Lambda = visit_FunctionDef  # type: ignore[assignment]


def _direct_service_calls(body: list[ast.stmt], modules: set[str], functions: set[str], helpers: set[str]) -> list[ast.Call]:
    nested = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    local = set(helpers)
    for fn in nested:
        if _direct_service_calls(fn.body, modules, functions, helpers):
            local.add(fn.name)
    walk = _BlockingWalk(modules, functions, local)
    for stmt in body:
        walk.visit(stmt)
    return walk.found


def blocking_calls_in_states(source: str) -> list[str]:
    """``Class.method: call`` for each service call a state makes outside offloop."""
    tree = ast.parse(source)
    modules, functions = _blocking_names(tree)
    module_functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    # Module functions that touch services themselves (meant to be handed to offloop.run).
    helpers: set[str] = set()
    changed = True
    while changed:
        changed = False
        for fn in module_functions:
            if fn.name not in helpers and _direct_service_calls(fn.body, modules, functions, helpers):
                helpers.add(fn.name)
                changed = True
    found: list[str] = []
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and _is_state_class(n)]:
        for method in cls.body:
            if isinstance(method, ast.FunctionDef | ast.AsyncFunctionDef):
                for call in _direct_service_calls(method.body, modules, functions, helpers):
                    found.append(f"{cls.name}.{method.name}: {ast.unparse(call.func)}() (line {call.lineno})")
    return found


@pytest.mark.parametrize("path", ui_state_modules(), ids=lambda p: p.relative_to(UI).as_posix())
def test_no_ui_state_runs_service_work_on_the_event_loop(path: Path) -> None:
    assert blocking_calls_in_states(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "body",
    [
        "    async def load(self):\n        with db.session_scope() as s:\n            pass\n",
        "    def load(self):\n        calls.get_call_history()\n",
        "    async def _fetch(self):\n        x = calls.get_call_history(session=None)\n",
        "    async def load(self):\n        read()\n",
        "    async def load(self):\n        apply_softphone_event()\n",
        "    async def load(self):\n        await asyncio.to_thread(read)\n",
        "    async def load(self):\n        def inner():\n            return read()\n        inner()\n",
    ],
)
def test_the_offloop_walker_catches_service_work_on_the_loop(body: str) -> None:
    source = (
        "import asyncio\nimport reflex as rx\nfrom services import calls, db\nfrom services.call_center.softphone import apply_softphone_event\n"
        "def read():\n    with db.session_scope() as s:\n        return calls.get_call_history(session=s)\n"
        f"class PageState(rx.State):\n{body}"
    )
    assert blocking_calls_in_states(source)


def test_the_offloop_walker_accepts_work_handed_to_the_helper() -> None:
    source = (
        "import reflex as rx\nfrom services import calls, db, live\nfrom services.authz import allowed\n"
        "from services.timestamps import local_day_range\n"
        "def read(p):\n    with db.session_scope() as s:\n        return calls.get_call_history(session=s)\n"
        "class PageState(rx.State):\n"
        "    async def load(self):\n        p = await principal_for_page(self)\n        rows = await offloop.run(read, p)\n"
        "        one = await offloop.call(calls.get_call, p, call_id=1)\n        allowed(p, 'x')\n        local_day_range('', '', 'UTC')\n"
        "    async def on_live_change(self, change: live.Change):\n        await self.load()\n"
        "    async def save(self):\n        def work():\n            with db.session_scope() as s:\n                calls.log_call(session=s)\n"
        "        await offloop.run(work)\n"
    )
    assert blocking_calls_in_states(source) == []
