"""The sidecar's side of the session row: leases on firms' lines and what actually happened.

A sidecar worker claims the sessions that need one with a lease (``worker_id`` and an expiry it
renews), then writes back QR payloads, status, pairing and failures. Every write on the row is
fenced by the lease: a sidecar that lost a firm to another one cannot overwrite its status.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from services.errors import Invalid
from services.models import WhatsappDesiredState, WhatsappLease, WhatsappSession, WhatsappStatus, utcnow
from services.models.base import max_length
from services.names import clean_name
from services.tenancy import owned_by
from services.whatsapp.delivery import tenants_with_pending
from services.whatsapp.failures import Failure, classify

QR_EXPIRED = "QR expired — link again"
_QR_MAX = max_length(WhatsappSession, "qr_payload")

_LEASE_COLUMNS = (
    WhatsappSession.tenant_id,
    WhatsappSession.desired_state,
    WhatsappSession.status,
    WhatsappSession.device_jid,
    WhatsappSession.retry_count,
    WhatsappSession.next_retry_at,
    WhatsappSession.lease_expires_at,
)


def _lease_of_row(row: sa.Row) -> WhatsappLease:
    return WhatsappLease(
        tenant_id=row.tenant_id,
        desired_state=row.desired_state,
        status=row.status,
        device_jid=row.device_jid,
        retry_count=row.retry_count,
        next_retry_at=row.next_retry_at,
        lease_expires_at=row.lease_expires_at,
    )


def _needs_a_worker() -> sa.ColumnElement[bool]:
    # Wanted connected, or wanted disconnected but not yet torn down (a device to log out).
    return sa.or_(
        WhatsappSession.desired_state == WhatsappDesiredState.CONNECTED,
        WhatsappSession.status != WhatsappStatus.DISCONNECTED,
        WhatsappSession.device_jid.is_not(None),  # type: ignore[union-attr]
    )


def _free_for(worker_id: str, held: Sequence[int], now: datetime) -> sa.ColumnElement[bool]:
    """Sessions ``worker_id`` may claim: unheld, lapsed, or its own that it does not hold yet."""
    mine = WhatsappSession.worker_id == worker_id
    if held:
        # Already held sessions must not be candidates: they would use up the claim limit
        # and keep a worker from ever claiming anything else.
        mine = sa.and_(mine, WhatsappSession.tenant_id.not_in(held))  # type: ignore[attr-defined]
    return sa.or_(
        WhatsappSession.worker_id.is_(None),  # type: ignore[union-attr]
        mine,
        WhatsappSession.lease_expires_at.is_(None),  # type: ignore[union-attr]
        WhatsappSession.lease_expires_at < now,  # type: ignore[operator]
    )


def restore_active_sessions(
    *,
    session: Session,
    worker_id: str,
    lease_seconds: float,
    limit: int = 50,
    held: Iterable[int] = (),
    now: datetime | None = None,
) -> list[WhatsappLease]:
    """Claim for ``worker_id`` up to ``limit`` sessions that need a sidecar and that no live worker
    holds; returns this worker's newly claimed leases (the name is the original plan's: a worker
    restores the firms' lines by claiming them).

    A session is free when it has no worker, its lease has lapsed (its worker died), or it is
    ``worker_id``'s own but not among ``held`` (a restarted worker takes its tenants back at
    once). Candidates are locked with SKIP LOCKED on PostgreSQL and claimed by one conditional
    UPDATE, so two sidecars racing for a session never both win and never wait on each other.
    """
    if limit <= 0:
        return []
    now = now or utcnow()
    held_ids = sorted(set(held))
    free = _free_for(worker_id, held_ids, now)
    candidates = list(
        session.exec(
            select(WhatsappSession.id)
            .where(_needs_a_worker(), free)
            .order_by(WhatsappSession.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )
    if not candidates:
        return []
    session.execute(
        sa.update(WhatsappSession)
        .where(WhatsappSession.id.in_(candidates), free)  # type: ignore[union-attr]
        .values(worker_id=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds), lease_renewed_at=now)
        .execution_options(synchronize_session=False)
    )
    rows = session.execute(
        sa.select(*_LEASE_COLUMNS)
        .where(WhatsappSession.id.in_(candidates), WhatsappSession.worker_id == worker_id)  # type: ignore[union-attr]
        .order_by(WhatsappSession.id)
    ).all()
    return [_lease_of_row(r) for r in rows]


@dataclass(frozen=True)
class WorkerSync:
    """What one reconcile tick learns from the database, in one transaction."""

    leases: list[WhatsappLease]  # every session the worker holds now, freshly read
    claimed: set[int]  # tenants among them claimed by this call
    pending: set[int]  # tenants among ``pending_for`` with PENDING outbound messages


def sync_worker(
    *,
    session: Session,
    worker_id: str,
    held: Iterable[int],
    lease_seconds: float,
    renew: bool,
    claim_limit: int,
    seen: Iterable[int] = (),
    pending_for: Iterable[int] = (),
    now: datetime | None = None,
) -> WorkerSync:
    """The sidecar's whole database round of a tick, batched for every tenant it holds.

    Renews the worker's leases (when ``renew``; the sidecar does it a few times per lease, so
    most ticks only read), records the sessions in ``seen`` as alive, claims up to
    ``claim_limit`` free sessions, reads back every session the worker holds and tells which
    tenants of ``pending_for`` have messages to send.
    """
    now = now or utcnow()
    held_ids = sorted(set(held))
    if renew:
        session.execute(
            sa.update(WhatsappSession)
            .where(WhatsappSession.worker_id == worker_id)
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds), lease_renewed_at=now)
            .execution_options(synchronize_session=False)
        )
    seen_ids = sorted(set(seen))
    if seen_ids:
        session.execute(
            sa.update(WhatsappSession)
            .where(WhatsappSession.worker_id == worker_id, WhatsappSession.tenant_id.in_(seen_ids))  # type: ignore[attr-defined]
            .values(last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
    claimed = restore_active_sessions(
        session=session, worker_id=worker_id, lease_seconds=lease_seconds, limit=claim_limit, held=held_ids, now=now
    )
    rows = session.execute(sa.select(*_LEASE_COLUMNS).where(WhatsappSession.worker_id == worker_id)).all()
    pending = tenants_with_pending(session=session, tenant_ids=pending_for)
    return WorkerSync(leases=[_lease_of_row(r) for r in rows], claimed={c.tenant_id for c in claimed}, pending=pending)


def release_leases(*, session: Session, worker_id: str, tenant_ids: Iterable[int] | None = None) -> int:
    """Give up this worker's leases (all, or ``tenant_ids``) so another sidecar can take them at once."""
    query = sa.update(WhatsappSession).where(WhatsappSession.worker_id == worker_id)
    if tenant_ids is not None:
        ids = list(tenant_ids)
        if not ids:
            return 0
        query = query.where(WhatsappSession.tenant_id.in_(ids))  # type: ignore[attr-defined]
    # The release time stays as the last sign of life: "not running since" if nobody takes over.
    return session.execute(query.values(worker_id=None, lease_expires_at=None, lease_renewed_at=utcnow())).rowcount


def _fenced_update(session: Session, *, tenant_id: int, worker_id: str, **values: object) -> bool:
    values["updated_at"] = utcnow()
    result = session.execute(
        sa.update(WhatsappSession)
        .where(owned_by(WhatsappSession, tenant_id), WhatsappSession.worker_id == worker_id)
        .values(**values)
    )
    return result.rowcount == 1


def record_connecting(*, session: Session, tenant_id: int, worker_id: str) -> bool:
    """The worker is starting the client; False when it no longer holds the lease."""
    return _fenced_update(
        session, tenant_id=tenant_id, worker_id=worker_id, status=WhatsappStatus.CONNECTING, qr_payload=None, qr_issued_at=None
    )


def record_qr(*, session: Session, tenant_id: int, worker_id: str, payload: str, issued_at: datetime | None = None) -> bool:
    """A new QR payload to show: status QR_PENDING with the payload, at once."""
    if not payload or len(payload) > _QR_MAX:
        raise Invalid("payload", f"a QR payload is 1 to {_QR_MAX} characters")
    return _fenced_update(
        session,
        tenant_id=tenant_id,
        worker_id=worker_id,
        status=WhatsappStatus.QR_PENDING,
        qr_payload=payload,
        qr_issued_at=issued_at or utcnow(),
        last_error=None,
        error_code=None,
        next_retry_at=None,
    )


def record_pairing(
    *, session: Session, tenant_id: int, worker_id: str, device_jid: str, phone_number: str | None, push_name: str | None
) -> bool:
    """The phone scanned the QR: remember the device (to restore it) and the linked number and name."""
    if not device_jid:
        raise Invalid("device_jid", "a paired device has a JID")
    return _fenced_update(
        session,
        tenant_id=tenant_id,
        worker_id=worker_id,
        device_jid=device_jid[:128],
        phone_number=phone_number,
        push_name=clean_name(push_name)[:128] or None,
        qr_payload=None,
        qr_issued_at=None,
        status=WhatsappStatus.CONNECTING,
    )


def record_connected(*, session: Session, tenant_id: int, worker_id: str, push_name: str | None = None) -> bool:
    """The client is logged in and online."""
    now = utcnow()
    values: dict[str, object] = {
        "status": WhatsappStatus.CONNECTED,
        "connected_since": now,
        "last_seen_at": now,
        "retry_count": 0,
        "next_retry_at": None,
        "last_error": None,
        "error_code": None,
        "qr_payload": None,
        "qr_issued_at": None,
    }
    name = clean_name(push_name)[:128]
    if name:
        values["push_name"] = name
    return _fenced_update(session, tenant_id=tenant_id, worker_id=worker_id, **values)


def record_error(
    *,
    session: Session,
    tenant_id: int,
    worker_id: str,
    reason: str,
    retry_count: int,
    next_retry_at: datetime | None,
    code: Failure | str | None = None,
) -> bool:
    """The client failed (dial error, stream replaced, ban...): ERROR with the failure's class
    (``code`` when the gateway knew it, else read from ``reason``), the raw reason and the next try."""
    return _fenced_update(
        session,
        tenant_id=tenant_id,
        worker_id=worker_id,
        status=WhatsappStatus.ERROR,
        last_error=(reason or "unknown error")[:512],
        error_code=classify(reason, code).value,
        retry_count=retry_count,
        next_retry_at=next_retry_at,
        qr_payload=None,
        qr_issued_at=None,
    )


def record_disconnected(
    *,
    session: Session,
    tenant_id: int,
    worker_id: str,
    reason: str | None = None,
    give_up: bool = False,
    code: Failure | str | None = None,
) -> bool:
    """The line is down and its device forgotten (unlinked, logged out, or QR expired).

    ``give_up`` also flips the desired state to DISCONNECTED, so nothing reconnects until an
    admin links again; ``reason`` (raw) is classified, and its class is what the UI shows.
    """
    values: dict[str, object] = {
        "status": WhatsappStatus.DISCONNECTED,
        "qr_payload": None,
        "qr_issued_at": None,
        "device_jid": None,
        "phone_number": None,
        "push_name": None,
        "connected_since": None,
        "next_retry_at": None,
        "retry_count": 0,
        "last_error": reason[:512] if reason else None,
        "error_code": classify(reason, code).value if (reason or code) else None,
    }
    if give_up:
        values["desired_state"] = WhatsappDesiredState.DISCONNECTED
    return _fenced_update(session, tenant_id=tenant_id, worker_id=worker_id, **values)


def _unheld(now: datetime) -> sa.ColumnElement[bool]:
    # Wanted by a firm, but no sidecar holds it: none ever did, or its lease lapsed.
    return sa.and_(
        _needs_a_worker(),
        sa.or_(
            WhatsappSession.worker_id.is_(None),  # type: ignore[union-attr]
            WhatsappSession.lease_expires_at.is_(None),  # type: ignore[union-attr]
            WhatsappSession.lease_expires_at < now,  # type: ignore[operator]
        ),
    )


def unheld_lines(*, session: Session, now: datetime | None = None) -> int:
    """How many firms' lines need a sidecar but have none holding their lease right now
    (readiness: ``/api/v1/ready`` is not ready while a wanted line has no worker)."""
    stmt = select(sa.func.count()).select_from(WhatsappSession).where(_unheld(now or utcnow()))
    return int(session.exec(stmt).one())


def unheld_tenants(*, session: Session, tenant_ids: Iterable[int], now: datetime | None = None) -> set[int]:
    """Which of ``tenant_ids`` have a line wanted but held by no sidecar right now. A sidecar that
    dies writes nothing: its lease just lapses, so the dashboard learns it by asking."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return set()
    stmt = select(WhatsappSession.tenant_id).where(_unheld(now or utcnow()), WhatsappSession.tenant_id.in_(ids))  # type: ignore[attr-defined]
    return set(session.exec(stmt).all())
