"""The one place where domain errors become HTTP answers.

Bad input is answered in the shape FastAPI uses for its own validation errors
(``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``), so a client parses one
format whether pydantic or a service refused the request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError

from services.errors import AuthenticationFailed, Conflict, DomainError, Forbidden, Invalid, NotFound, TooManyAttempts
from watheeq_ui.api.deps import refuse_unchecked_token

_BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


_STATUS_OF: tuple[tuple[type[DomainError], int], ...] = (
    (AuthenticationFailed, status.HTTP_401_UNAUTHORIZED),
    (Forbidden, status.HTTP_403_FORBIDDEN),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Conflict, status.HTTP_409_CONFLICT),
    (Invalid, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (TooManyAttempts, status.HTTP_429_TOO_MANY_REQUESTS),
)

# Read requests carry their input in the query string, writes in the body.
_QUERY_METHODS = frozenset({"GET", "HEAD", "DELETE"})


class ErrorPublic(BaseModel):
    """The body of every refusal but bad input: why, and the field when one is to blame."""

    detail: str
    field: str | None = None


_WHY: dict[int, str] = {
    status.HTTP_400_BAD_REQUEST: "The body is not JSON (malformed, or nested too deep to read)",
    status.HTTP_401_UNAUTHORIZED: "No bearer token, or one that is unknown, expired or revoked",
    status.HTTP_403_FORBIDDEN: "The caller's role may not do this",
    status.HTTP_404_NOT_FOUND: "No such object in the caller's firm",
    status.HTTP_409_CONFLICT: "The change conflicts with the current state or a concurrent change",
    status.HTTP_416_RANGE_NOT_SATISFIABLE: "The Range lies outside the file; Content-Range: bytes */<size> gives its size",
    status.HTTP_422_UNPROCESSABLE_CONTENT: "Bad input: where (loc) and why (msg)",
    status.HTTP_429_TOO_MANY_REQUESTS: "Too many failed sign-ins; wait for Retry-After seconds",
    status.HTTP_503_SERVICE_UNAVAILABLE: "The database cannot be reached",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the refusals a route may answer, so clients see every code.

    422 keeps FastAPI's validation schema (the shape of :func:`invalid_detail`); the others
    are :class:`ErrorPublic`.
    """
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == status.HTTP_422_UNPROCESSABLE_CONTENT:
            documented[code] = {
                "description": _WHY[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
            }
        else:
            documented[code] = {"model": ErrorPublic, "description": _WHY[code]}
    return documented


def invalid_detail(location: str, field: str | None, message: str) -> list[dict[str, object]]:
    return [{"loc": [location, field] if field else [location], "msg": message, "type": "value_error"}]


def invalid_response(location: str, field: str | None, message: str) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": invalid_detail(location, field, message)},
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    code = next(code for kind, code in _STATUS_OF if isinstance(exc, kind))
    if isinstance(exc, Invalid):
        location = "query" if request.method in _QUERY_METHODS else "body"
        return invalid_response(location, exc.field, exc.message)
    body: dict[str, object] = {"detail": exc.message}
    if exc.field:
        body["field"] = exc.field
    headers = _BEARER_CHALLENGE if isinstance(exc, AuthenticationFailed) else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse(status_code=code, content=body, headers=headers)


async def _integrity_error(_request: Request, _exc: Exception) -> JSONResponse:
    # Services check uniqueness before writing; this only answers the race where two
    # requests pass that check together and the database refuses the second.
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={"detail": "the change conflicts with a concurrent one; retry"},
    )


async def _unstorable_value(request: Request, _exc: Exception) -> JSONResponse:
    # The edge bounds ids and sizes, but a value can still be one the database cannot
    # hold (a NUL character in PostgreSQL text, a number past 64 bits hidden in a
    # cursor). It came from the client, so it is bad input, not a server fault.
    location = "query" if request.method in _QUERY_METHODS else "body"
    return invalid_response(location, None, "a value is out of range or holds characters that cannot be stored")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    try:
        # A route that checks its token with its work has not checked it yet: a bad token is 401, not 422.
        await refuse_unchecked_token(request)
    except AuthenticationFailed as refused:
        return await _domain_error(request, refused)
    # FastAPI's default echoes the rejected input back; a rejected body may hold a
    # password or a SIP secret, so only where and why are returned.
    detail = [
        {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail})


def install(app: FastAPI) -> None:
    """Register every mapping on ``app``."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _unstorable_value)
    app.add_exception_handler(OverflowError, _unstorable_value)
    app.add_exception_handler(RequestValidationError, _validation_error)
