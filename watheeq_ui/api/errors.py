"""The one place where domain errors become HTTP answers.

Bad input is answered in the shape FastAPI uses for its own validation errors
(``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``), so a client parses one
format whether pydantic or a service refused the request.
"""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError

from services.errors import AuthenticationFailed, Conflict, DomainError, Forbidden, Invalid, NotFound, TooManyAttempts

_BEARER_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class ErrorPublic(BaseModel):
    """The body of a 401, 403, 404, 409 or 429 (documented in OpenAPI)."""

    detail: str
    field: str | None = None


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorPublic(BaseModel):
    """The body of a 422: where (``loc``, the field last) and why (``msg``)."""

    detail: list[ValidationErrorItem]

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


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
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
