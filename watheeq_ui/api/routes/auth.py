"""Sign in (bearer tokens), sign out and who-am-I."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from services import accounts, db
from services.models import Role, TenantPublic, UserBase
from services.models.base import max_length
from watheeq_ui.api.deps import PrincipalDep, SessionDep, TokenDep, get_principal
from watheeq_ui.api.errors import responses

router = APIRouter(prefix="/auth", tags=["auth"])


class TokenRequest(BaseModel):
    email: str = Field(max_length=max_length(UserBase, "email"))
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
    # argon2 takes tens of milliseconds: keep it off the event loop.
    return await run_in_threadpool(_sign_in, body, source)


def _sign_in(body: TokenRequest, source: str | None) -> TokenPublic:
    with db.session_scope() as session:
        result = accounts.sign_in(session=session, email=body.email, password=body.password, source=source)
    return TokenPublic(access_token=result.token, expires_at=result.expires_at)


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


# --------------------------------------------------------------------------- own account


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=accounts.MAX_PASSWORD_LENGTH)
    new_password: str = Field(max_length=accounts.MAX_PASSWORD_LENGTH)


class PasswordSet(BaseModel):
    token: str = Field(max_length=accounts.MAX_TOKEN_LENGTH, description="the token of the set-password link")
    password: str = Field(max_length=accounts.MAX_PASSWORD_LENGTH)


class SetPasswordPublic(BaseModel):
    email: str


class SessionsEndedPublic(BaseModel):
    sessions_ended: int


@router.post(
    "/password",
    response_model=SessionsEndedPublic,
    responses=responses(400, 401, 422, 429),
)
def change_password(
    request: Request, session: SessionDep, principal: PrincipalDep, token: TokenDep, body: PasswordChange
) -> SessionsEndedPublic:
    """Change your own password with your current one; every other session of yours ends, this one stays."""
    ended = accounts.change_own_password(
        session=session,
        principal=principal,
        current_password=body.current_password,
        new_password=body.new_password,
        keep_session_id=accounts.session_id_of(session=session, token=token),
        source=request.client.host if request.client else None,
    )
    return SessionsEndedPublic(sessions_ended=ended)


@router.post(
    "/logout-everywhere",
    response_model=SessionsEndedPublic,
    responses=responses(401),
)
def logout_everywhere(session: SessionDep, principal: PrincipalDep) -> SessionsEndedPublic:
    """End every session of yours, in every browser and script, this token included."""
    return SessionsEndedPublic(sessions_ended=accounts.sign_out_everywhere(session=session, principal=principal))


@router.post(
    "/set-password",
    response_model=SetPasswordPublic,
    responses=responses(400, 422),
)
def set_password(session: SessionDep, body: PasswordSet) -> SetPasswordPublic:
    """Set a password with a one-time link an admin gave you (no sign-in needed); the link then stops working."""
    return SetPasswordPublic(email=accounts.set_password_with_link(session=session, token=body.token, password=body.password))
