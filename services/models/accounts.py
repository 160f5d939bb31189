"""Firms, their users, sign-in and sessions: tables and the DTOs that leave the services.

Families: ``TenantBase`` (table ``Tenant``, ``TenantPublic``) and ``UserBase`` (table ``User``,
``UserCreate`` / ``UserUpdate``, ``UserPublic``); their limits are declared once there.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel
from sqlmodel._compat import SQLModelConfig

from services.authz import ADMIN_ROLES, SUPERVISOR_ROLES, Role
from services.models.base import Input, Labelled, TenantOwned, enum_col, max_length, ts_field


MIN_PASSWORD_LENGTH = 8
# argon2 hashes whatever it is given; a cap keeps a huge body from costing seconds.
MAX_PASSWORD_LENGTH = 1024


class TenantBase(Labelled):
    labels = {"name": "a firm name"}

    name: str = Field(max_length=200)
    slug: str = Field(max_length=80)
    region: str = Field(default="SA", max_length=2)
    timezone: str = Field(default="Asia/Riyadh", max_length=64)


class Tenant(TenantBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=max_length(TenantBase, "slug"), unique=True)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class UserBase(Labelled):
    labels = {"full_name": "a name", "password": "a password"}

    # Emails are unique across tenants: a login names one person in one firm.
    email: str = Field(max_length=254)
    full_name: str = Field(default="", max_length=200)


class User(UserBase, TenantOwned, table=True):
    __table_args__ = (sa.UniqueConstraint("email", name="uq_user_email"),)

    id: int | None = Field(default=None, primary_key=True)
    role: Role = Field(sa_column=enum_col(Role))
    password_hash: str = Field(max_length=255)
    active: bool = Field(default=True)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    last_sign_in_at: datetime | None = ts_field()


class ApiToken(TenantOwned, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    # SHA-256 of the token; the token itself is shown once and never stored.
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = ts_field(nullable=False, default_now=True)
    expires_at: datetime = ts_field(nullable=False)
    revoked: bool = Field(default=False)
    # Idle time is measured here, never by the browser: a sign-in from the dashboard ends
    # after ``idle_timeout_seconds`` without use (None: a script's token, no idle limit).
    last_used_at: datetime | None = ts_field()
    idle_timeout_seconds: int | None = Field(default=None)


class LoginThrottle(SQLModel, table=True):
    """Sign-in attempts of one email or one source address, shared by every process.

    Not tenant-owned: the attempt comes before anyone knows the firm. The key is a hash,
    so the table names neither the addresses tried nor who tried them.
    """

    __tablename__ = "login_throttle"

    key_hash: str = Field(primary_key=True, max_length=64)
    # Attempts counted in the window that no successful sign-in has taken back.
    attempts: int = Field(default=0)
    window_started_at: datetime = ts_field(nullable=False, index=True, default_now=True)
    blocked_until: datetime | None = ts_field()


class PasswordSetLink(TenantOwned, table=True):
    """A one-time link with which a user sets their own password (new account or reset)."""

    __tablename__ = "password_set_link"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True, ondelete="CASCADE")
    # SHA-256 of the link's token; the token is shown once, to the admin who made it.
    token_hash: str = Field(max_length=64, unique=True)
    created_by_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    created_at: datetime = ts_field(nullable=False, default_now=True)
    expires_at: datetime = ts_field(nullable=False)
    used_at: datetime | None = ts_field()


class Principal(SQLModel):
    """The authenticated actor: who, in which tenant, with which role."""

    user_id: int
    tenant_id: int
    role: Role
    email: str = ""
    full_name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def is_supervisor(self) -> bool:
        return self.role in SUPERVISOR_ROLES


class TenantPublic(TenantBase):
    id: int


class UserCreate(UserBase, Input):
    """A new user of the firm (OWNER/ADMIN)."""

    model_config = SQLModelConfig(extra="forbid")

    role: Role
    password: str | None = Field(
        default=None,
        max_length=MAX_PASSWORD_LENGTH,
        description="omit it to get a one-time set-password link for the new user instead",
    )


class UserUpdate(Input):
    """What an admin may change of a user; a field left out stays as it is."""

    model_config = SQLModelConfig(extra="forbid")
    labels = UserBase.labels

    role: Role | None = None
    active: bool | None = None
    full_name: str | None = Field(default=None, max_length=max_length(UserBase, "full_name"))


class PasswordReset(Input):
    model_config = SQLModelConfig(extra="forbid")
    labels = UserBase.labels

    password: str | None = Field(
        default=None,
        max_length=MAX_PASSWORD_LENGTH,
        description="the new password; omit it to get a one-time set-password link instead",
    )


class UserPublic(UserBase):
    id: int
    role: Role
    active: bool
    extension: str | None = None
    last_sign_in_at: datetime | None = None


class PasswordLinkPublic(SQLModel):
    """A set-password link as its creator sees it, once: the token is never stored in clear."""

    user_id: int
    token: str
    expires_at: datetime


class UserCreated(SQLModel):
    user: UserPublic
    # Present when the user was created without a password.
    password_link: PasswordLinkPublic | None = None


class SignInResult(SQLModel):
    principal: Principal
    token: str
    expires_at: datetime
