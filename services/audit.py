"""The audit log: who did what to which object of the firm, and when.

Services record an event in the same transaction as the change it describes, so a change
that rolls back leaves no event and a committed change always has one. Details are small
JSON objects of what changed; callers never put a secret (password, token, key) in them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from services.authz import Permission, require
from services.models import AuditEvent, AuditEventPublic, Principal, User
from services.tenancy import tenant_select
from services.timestamps import search_bound

MAX_LIST = 500


def record(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal | None,
    action: str,
    object_type: str,
    object_id: Any = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event to the firm's audit log (flushed with the caller's transaction)."""
    if actor is not None and actor.tenant_id != tenant_id:
        raise ValueError("an actor of another tenant cannot act in this one")
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            actor_user_id=actor.user_id if actor is not None else None,
            action=action,
            object_type=object_type,
            object_id="" if object_id is None else str(object_id),
            detail=detail or {},
        )
    )
    session.flush()


def list_events(
    *,
    session: Session,
    tenant_id: int,
    action: str | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEventPublic]:
    """The firm's audit events, newest first, optionally narrowed."""
    query = tenant_select(AuditEvent, tenant_id)
    if action:
        query = query.where(AuditEvent.action == action)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        query = query.where(AuditEvent.object_id == str(object_id))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    query = query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(max(1, min(limit, MAX_LIST)))  # type: ignore[attr-defined]
    events = session.exec(query).all()
    actor_ids = {e.actor_user_id for e in events if e.actor_user_id}
    emails: dict[int, str] = {}
    if actor_ids:
        users = session.exec(tenant_select(User, tenant_id).where(User.id.in_(actor_ids))).all()  # type: ignore[union-attr]
        emails = {u.id: u.email for u in users}
    return [
        AuditEventPublic(
            id=e.id,
            actor_user_id=e.actor_user_id,
            actor_email=emails.get(e.actor_user_id) if e.actor_user_id else None,
            action=e.action,
            object_type=e.object_type,
            object_id=e.object_id,
            at=e.at,
            detail=e.detail,
        )
        for e in events
    ]


def read_log(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    action: str | None = None,
    object_type: str | None = None,
    object_id: Any = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditEventPublic]:
    """The firm's audit log as its owners read it (:data:`Permission.READ_AUDIT_LOG`)."""
    require(actor, Permission.READ_AUDIT_LOG, tenant_id=tenant_id)
    since = search_bound(since, "since")
    return list_events(
        session=session, tenant_id=tenant_id, action=action, object_type=object_type, object_id=object_id, since=since, limit=limit
    )
