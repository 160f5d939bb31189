"""The REST API: one FastAPI app, handed to Reflex as ``rx.App(api_transformer=api)``.

Reflex mounts its own ASGI app inside this one, so these routes are matched first;
keeping all of them under ``/api/v1`` leaves Reflex's own paths alone. Reflex adds CORS
to this app itself, and runs only its own lifespan tasks (not FastAPI's).
"""

from __future__ import annotations

import sys

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services import db, logs, readiness
from watheeq_ui.api import errors
from watheeq_ui.api.deps import API_PREFIX
from watheeq_ui.api.request_log import RequestLogMiddleware
from watheeq_ui.api.routes import audit, auth, call_center, case_files, clients, live_ops, recordings, users, whatsapp

api = FastAPI(
    title="Watheeq communication API",
    summary="Softphone extensions, call log and analytics, clients and the firm's WhatsApp line.",
    version="1",
    openapi_url=f"{API_PREFIX}/openapi.json",
    docs_url=f"{API_PREFIX}/docs",
    redoc_url=None,
)
errors.install(api)
api.add_middleware(RequestLogMiddleware)
logs.configure()

# How long a thread may hold the interpreter's lock while another waits for it (CPython's
# default: 5 ms). A request's work comes back from each database statement needing the lock,
# and under load the event loop, busy with the other requests, held it for up to the whole
# interval each time, while the work's transaction (and on PostgreSQL the firm's rollup rows)
# stayed open: with 0.5 ms and group commits, POST /calls 574-666 → 785-1,056 req/s on SQLite,
# 475-590 → 620-840 on PostgreSQL (bench/bench_api.py, docs/PERFORMANCE.md). Set by the process that serves the API (the
# Reflex backend imports this module).
SWITCH_INTERVAL_S = 0.0005
sys.setswitchinterval(SWITCH_INTERVAL_S)

health_router = APIRouter(tags=["health"])


@health_router.get("/health", responses=errors.responses(503))
def health() -> JSONResponse:
    """Liveness: the process answers and reaches its database (no authentication, no details)."""
    try:
        with db.get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content={"status": "unavailable", "database": "unreachable"}
        )
    return JSONResponse(content={"status": "ok", "database": "ok"})


class ReadyCheck(BaseModel):
    name: str
    ok: bool
    reason: str


class Readiness(BaseModel):
    status: str
    checks: list[ReadyCheck]


@health_router.get("/ready", response_model=Readiness, responses=errors.responses(503))
def ready() -> JSONResponse:
    """Readiness for the proxy and monitoring: the database answers, its schema is at the
    newest migration, Redis answers (when ``REDIS_URL`` is set), and every WhatsApp line
    that should be connected is held by a running sidecar. 503 with the failing checks
    otherwise (no authentication; reasons name no host, URL or credential)."""
    found = readiness.checks()
    ok = all(c.ok for c in found)
    body = Readiness(status="ready" if ok else "not ready", checks=[ReadyCheck(**vars(c)) for c in found])
    return JSONResponse(status_code=200 if ok else status.HTTP_503_SERVICE_UNAVAILABLE, content=body.model_dump())


# The call log's POST, which every softphone and PBX event reaches, is the app's first route,
# outside the routers (no path of theirs overlaps it): a LeanRoute, matched by one regular
# expression instead of a walk through the nested routers (watheeq_ui/api/lean.py).
api.router.routes.insert(0, call_center.log_call_route)

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(health_router)
# Routes are matched in this order, one by one (no path's routes overlap another router's):
# the call log's other routes first.
api_router.include_router(call_center.router)
api_router.include_router(auth.router)
api_router.include_router(users.router)
api_router.include_router(clients.router)
api_router.include_router(case_files.router)
api_router.include_router(live_ops.router)
api_router.include_router(recordings.router)
api_router.include_router(whatsapp.router)
api_router.include_router(audit.router)
api.include_router(api_router)
