"""The audit log: who did what to which object, never with a secret in ``detail``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import TenantOwned, ts_field


class AuditEvent(TenantOwned, table=True):
    """Who did what to which object of the firm, and when (append-only)."""

    __tablename__ = "audit_event"
    __table_args__ = (sa.Index("ix_audit_event_tenant_at", "tenant_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    # Kept when the user is deleted: the log must still say that somebody did it.
    actor_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    action: str = Field(max_length=64)
    object_type: str = Field(max_length=32)
    object_id: str = Field(default="", max_length=64)
    at: datetime = ts_field(nullable=False, default_now=True)
    # Small JSON object of what changed; never a secret.
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))


class AuditEventPublic(SQLModel):
    id: int
    actor_user_id: int | None
    actor_email: str | None
    action: str
    object_type: str
    object_id: str
    at: datetime
    detail: dict[str, Any]
