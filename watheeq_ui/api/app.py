"""The REST API: one FastAPI app, handed to Reflex as ``rx.App(api_transformer=api)``.

Reflex mounts its own ASGI app inside this one, so these routes are matched first;
keeping all of them under ``/api/v1`` leaves Reflex's own paths alone. Reflex adds CORS
to this app itself, and runs only its own lifespan tasks (not FastAPI's).
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, status
from fastapi.responses import JSONResponse

from services import db
from watheeq_ui.api import errors
from watheeq_ui.api.deps import API_PREFIX
from watheeq_ui.api.routes import audit, auth, call_center, clients, recordings, users, whatsapp

api = FastAPI(
    title="Watheeq communication API",
    summary="Softphone extensions, call log and analytics, clients and the firm's WhatsApp line.",
    version="1",
    openapi_url=f"{API_PREFIX}/openapi.json",
    docs_url=f"{API_PREFIX}/docs",
    redoc_url=None,
)
errors.install(api)

health_router = APIRouter(tags=["health"])


@health_router.get("/health", responses=errors.responses(503))
def health() -> JSONResponse:
    """Whether the API can reach its database (no authentication, no details)."""
    try:
        with db.get_engine().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, content={"status": "unavailable", "database": "unreachable"}
        )
    return JSONResponse(content={"status": "ok", "database": "ok"})


api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(health_router)
api_router.include_router(auth.router)
api_router.include_router(users.router)
api_router.include_router(clients.router)
api_router.include_router(call_center.router)
api_router.include_router(recordings.router)
api_router.include_router(whatsapp.router)
api_router.include_router(audit.router)
api.include_router(api_router)
