"""The firm's users (OWNER/ADMIN): list, add, change role, name or active flag, reset a password.

Every rule (who may change whom, the last owner, oneself) is in ``services.accounts``;
these routes only translate HTTP to it.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from services import accounts
from services.models import PasswordLinkPublic, PasswordReset, UserCreate, UserPublic, UserUpdate
from watheeq_ui.api.deps import AdminDep, IdPath, SessionDep
from watheeq_ui.api.errors import responses

router = APIRouter(prefix="/users", tags=["users"])


class PasswordLinkOut(BaseModel):
    token: str = Field(description="shown once: give it to the user; it is stored only hashed")
    path: str = Field(description="the dashboard page where the user sets the password with it")
    expires_at: datetime


class UserCreatedOut(BaseModel):
    user: UserPublic
    password_link: PasswordLinkOut | None = None


class PasswordResetOut(BaseModel):
    password_link: PasswordLinkOut | None = None


def _link_out(link: PasswordLinkPublic | None) -> PasswordLinkOut | None:
    if link is None:
        return None
    # The dashboard's public page (watheeq_ui.routes.SET_PASSWORD); the API does not know
    # which host name the firm's users reach the dashboard at.
    return PasswordLinkOut(token=link.token, path=f"/set-password?token={link.token}", expires_at=link.expires_at)


@router.get("", response_model=list[UserPublic], responses=responses(401, 403))
def list_users(session: SessionDep, admin: AdminDep) -> list[UserPublic]:
    """Every user of the firm with role, active flag, extension and last sign-in."""
    return accounts.list_users(session=session, tenant_id=admin.tenant_id)


@router.post(
    "",
    response_model=UserCreatedOut,
    status_code=status.HTTP_201_CREATED,
    responses=responses(400, 401, 403, 409, 422),
)
def create_user(session: SessionDep, admin: AdminDep, body: UserCreate) -> UserCreatedOut:
    """Add a user with a password, or without one and get a one-time set-password link (valid 72 h)."""
    created = accounts.add_user(
        session=session,
        tenant_id=admin.tenant_id,
        actor=admin,
        email=body.email,
        role=body.role,
        full_name=body.full_name,
        password=body.password,
    )
    return UserCreatedOut(user=created.user, password_link=_link_out(created.password_link))


@router.get("/{user_id}", response_model=UserPublic, responses=responses(401, 403, 404))
def get_user(session: SessionDep, admin: AdminDep, user_id: IdPath) -> UserPublic:
    """One user of the firm."""
    return accounts.get_user(session=session, tenant_id=admin.tenant_id, user_id=user_id)


@router.patch(
    "/{user_id}",
    response_model=UserPublic,
    responses=responses(400, 401, 403, 404, 409, 422),
)
def update_user(session: SessionDep, admin: AdminDep, user_id: IdPath, body: UserUpdate) -> UserPublic:
    """Change a user's role, name or active flag; disabling ends all of their sessions at once."""
    return accounts.update_user(
        session=session,
        tenant_id=admin.tenant_id,
        actor=admin,
        user_id=user_id,
        role=body.role,
        active=body.active,
        full_name=body.full_name,
    )


@router.post(
    "/{user_id}/password-reset",
    response_model=PasswordResetOut,
    responses=responses(400, 401, 403, 404, 409, 422),
)
def reset_password(session: SessionDep, admin: AdminDep, user_id: IdPath, body: PasswordReset) -> PasswordResetOut:
    """Give a user a new password or a set-password link; their old password and every session end."""
    link = accounts.reset_password(
        session=session, tenant_id=admin.tenant_id, actor=admin, user_id=user_id, password=body.password
    )
    return PasswordResetOut(password_link=_link_out(link))
