"""Checks shared by the call-center services."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from services.errors import Forbidden, Invalid
from services.models import Principal, Role


def require_role(actor: Principal, tenant_id: int, roles: Collection[Role], action: str) -> None:
    """:class:`Forbidden` unless ``actor`` belongs to ``tenant_id`` and has one of ``roles``."""
    # A principal of another tenant reaching here is a bug at the edge; refuse rather than serve it.
    if actor.tenant_id != tenant_id or actor.role not in roles:
        raise Forbidden(f"your role may not {action}")


def require_member(actor: Principal, tenant_id: int) -> None:
    if actor.tenant_id != tenant_id:
        raise Forbidden("you do not belong to this firm")


def aware(value: datetime | None, field: str) -> datetime | None:
    """``value`` unchanged, or :class:`Invalid` when it carries no time zone (we never guess one)."""
    if value is not None and value.tzinfo is None:
        raise Invalid(field, "a time zone is required (UTC or an offset)")
    return value
