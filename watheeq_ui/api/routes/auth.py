"""Sign in (bearer tokens), sign out and who-am-I."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services import accounts, db, security
from services.errors import AuthenticationFailed
from services.models import Role, TenantPublic
from watheeq_ui.api.deps import PrincipalDep, SessionDep, TokenDep, get_principal
from watheeq_ui.api.errors import responses

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenRequest(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=accounts.MAX_PASSWORD_LENGTH)


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime


class MePublic(BaseModel):
    user_id: int
    email: str
    full_name: str
    role: Role
    tenant: TenantPublic


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# Both the JSON body of scripts and the OAuth2 password form of Swagger's "Authorize".
_TOKEN_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": TokenRequest.model_json_schema()},
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "username": {"type": "string", "description": "the email address"},
                        "password": {"type": "string", "format": "password"},
                        "grant_type": {"type": "string", "enum": ["password"]},
                    },
                }
            },
        },
    }
}


_NOT_CREDENTIALS = RequestValidationError(
    [{"loc": ("body",), "msg": "send JSON {email, password} or the OAuth2 password form", "type": "value_error"}]
)


async def _read_credentials(request: Request) -> TokenRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _FORM_TYPES:
        form = await request.form()
        raw: Any = {"email": form.get("username", form.get("email")), "password": form.get("password")}
    else:
        try:
            raw = json.loads(await request.body() or b"null")
        except (ValueError, RecursionError):
            # RecursionError: "[[[[…" nested past the interpreter's limit is bad input too.
            raise _NOT_CREDENTIALS from None
        if not isinstance(raw, dict):
            raise _NOT_CREDENTIALS
    try:
        return TokenRequest.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]) from None


@router.post("/token", response_model=TokenPublic, openapi_extra=_TOKEN_BODY_DOC, responses=responses(401, 422, 429))
async def create_token(request: Request) -> TokenPublic:
    """Exchange an email and password for a bearer token (JSON or the OAuth2 password form)."""
    body = await _read_credentials(request)
    source = request.client.host if request.client else None
    keys = accounts.login_throttle.keys_for(body.email, source)
    wait = max(accounts.login_throttle.login_delay_seconds(key) for key in keys)
    if wait > 0:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed sign-ins; wait before trying again",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    # argon2 takes tens of milliseconds: keep it off the event loop.
    return await run_in_threadpool(_sign_in, body, keys)


def _sign_in(body: TokenRequest, keys: list[str]) -> TokenPublic:
    with db.session_scope() as session:
        try:
            principal = accounts.authenticate(session=session, email=body.email, password=body.password)
        except AuthenticationFailed:
            for key in keys:
                accounts.login_throttle.record_failure(key)
            raise
        for key in keys:
            accounts.login_throttle.record_success(key)
        # Computed before the token is issued, so the token never outlives what the client is told.
        expires_at = security.token_expiry(security.DEFAULT_TOKEN_TTL)
        token = accounts.issue_token(session=session, principal=principal, ttl=security.DEFAULT_TOKEN_TTL)
    return TokenPublic(access_token=token, expires_at=expires_at)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, dependencies=[Depends(get_principal)], responses=responses(401))
def logout(session: SessionDep, token: TokenDep) -> None:
    """Revoke the token this request was made with."""
    # get_principal has already refused a request without a valid token.
    accounts.revoke_token(session=session, token=token or "")


@router.get("/me", response_model=MePublic, responses=responses(401))
def me(session: SessionDep, principal: PrincipalDep) -> MePublic:
    """The signed-in user and their firm."""
    tenant = accounts.get_tenant(session=session, tenant_id=principal.tenant_id)
    return MePublic(
        user_id=principal.user_id,
        email=principal.email,
        full_name=principal.full_name,
        role=principal.role,
        tenant=tenant,
    )
