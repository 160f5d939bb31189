"""The REST API: one FastAPI app, mounted into the Reflex backend via ``api_transformer``."""

from __future__ import annotations

from fastapi import FastAPI

api = FastAPI(
    title="Watheeq communication API",
    openapi_url="/api/v1/openapi.json",
    docs_url="/api/v1/docs",
    redoc_url=None,
)


@api.get("/api/v1/health", tags=["health"])
def health() -> dict[str, str]:
    return {"status": "ok"}
