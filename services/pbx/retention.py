"""Recording retention: each firm keeps its call recordings ``recording_retention_days``
(PbxSettings, default 365, 1..3650), then a daily job deletes them, except recordings of
calls linked to a case on legal hold.

:func:`purge_expired` deletes the *file* and its blob (services.blobs); the ``CallRecording``
row stays with ``purged_at`` set, so the call still shows it had a recording and a PBX
record read again does not fetch it back. :func:`purge_all_firms` is the daily job, run by
``python -m services.cli purge-recordings`` and by the reconciler process once a day.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from services import audit, blobs, db, storage
from services.authz import Permission, require
from services.errors import Conflict, Invalid
from services.models import Call, CallRecording, Case, CaseFile, CasePublic, PbxSettings, Principal, Tenant, utcnow
from services.pbx.recordings import SessionFactory
from services.tenancy import get_owned, owned_by, owned_join, tenant_select

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 365
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 3650


def retention_days(*, session: Session, tenant_id: int) -> int:
    settings = session.exec(tenant_select(PbxSettings, tenant_id)).first()
    return settings.recording_retention_days if settings is not None else DEFAULT_RETENTION_DAYS


def set_retention_days(*, session: Session, tenant_id: int, actor: Principal, days: int) -> int:
    """Keep the firm's recordings ``days`` days (1..3650; OWNER/ADMIN), audited."""
    require(actor, Permission.MANAGE_RECORDINGS, tenant_id=tenant_id)
    if isinstance(days, bool) or not isinstance(days, int) or not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise Invalid("recording_retention_days", f"between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS} days")
    settings = session.exec(tenant_select(PbxSettings, tenant_id)).first()
    if settings is None:
        raise Conflict("set the PBX settings first: recordings come from the PBX", field="recording_retention_days")
    before = settings.recording_retention_days
    settings.recording_retention_days = days
    session.add(settings)
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="recording.retention", object_type="pbx_settings",
        object_id=settings.id, detail={"before": before, "after": days},
    )
    return days


def set_legal_hold(*, session: Session, tenant_id: int, actor: Principal, case_id: int, hold: bool) -> bool:
    """Put a case on legal hold (its calls' recordings are never deleted by retention) or
    release it (OWNER/ADMIN), audited. Another firm's case is :class:`NotFound`."""
    require(actor, Permission.MANAGE_RECORDINGS, tenant_id=tenant_id)
    case = get_owned(session, Case, tenant_id, case_id, what="case")
    if case.legal_hold != hold:
        case.legal_hold = hold
        session.add(case)
        audit.record(
            session=session, tenant_id=tenant_id, actor=actor, action="case.legal_hold", object_type="case",
            object_id=case.id, detail={"hold": hold},
        )
    return hold


def cases_for_hold(*, session: Session, tenant_id: int, actor: Principal, query: str = "", limit: int = 20) -> list[CasePublic]:
    """The firm's cases on legal hold, then (with ``query``) other cases whose title or
    reference contains it, for the page where an admin holds or releases them."""
    require(actor, Permission.MANAGE_RECORDINGS, tenant_id=tenant_id)
    held = session.exec(tenant_select(Case, tenant_id).where(Case.legal_hold.is_(True)).order_by(Case.id.desc())).all()  # type: ignore[attr-defined]
    found: list[Case] = []
    text = (query or "").strip()
    if text:
        if len(text) > 100:
            raise Invalid("query", "search with at most 100 characters")
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        found = list(
            session.exec(
                tenant_select(Case, tenant_id)
                .where(Case.legal_hold.is_(False), sa.or_(Case.title.ilike(pattern, escape="\\"), Case.reference.ilike(pattern, escape="\\")))  # type: ignore[attr-defined]
                .order_by(Case.id.desc())  # type: ignore[union-attr]
                .limit(max(1, min(limit, 100)))
            ).all()
        )
    return [
        CasePublic(id=c.id, client_id=c.client_id, title=c.title, reference=c.reference, status=c.status, legal_hold=c.legal_hold)
        for c in [*held, *found]
    ]


def purge_expired(*, session: Session, tenant_id: int, now: datetime | None = None, store: storage.Store | None = None) -> int:
    """Delete the files of the firm's recordings of calls started before the retention
    period, except calls linked to a case on legal hold and files a case keeps; returns how
    many were purged.

    The row stays with its blob deleted and ``purged_at`` set; a recording still
    waiting to be fetched is marked too (it will not be fetched). The file goes first: if
    the caller's commit then fails, the next run finds the row again and finishes it.
    """
    store = store or storage.default_store()
    now = now or utcnow()
    days = retention_days(session=session, tenant_id=tenant_id)
    cutoff = now - timedelta(days=days)
    expired = session.exec(
        select(CallRecording)
        .join(Call, owned_join(Call, Call.id == CallRecording.call_id, tenant_id))
        .outerjoin(Case, owned_join(Case, Case.id == Call.case_id, tenant_id))
        .where(
            owned_by(CallRecording, tenant_id),
            CallRecording.purged_at.is_(None),  # type: ignore[union-attr]
            sa.or_(CallRecording.blob_id.is_not(None), CallRecording.source_file.is_not(None)),  # type: ignore[union-attr]
            Call.started_at < cutoff,
            sa.or_(Case.id.is_(None), Case.legal_hold.is_(False)),  # type: ignore[union-attr]
            # A file kept on a case (services.case_files) stays as long as the case keeps it.
            ~sa.exists().where(owned_by(CaseFile, tenant_id), CaseFile.blob_id == CallRecording.blob_id),
        )
        .order_by(CallRecording.id)
        # Two daily jobs at once (two processes on PostgreSQL) split the rows instead of
        # deleting and auditing each twice; SQLite has one writer and ignores this.
        .with_for_update(of=CallRecording, skip_locked=True)  # type: ignore[arg-type]
    ).all()
    for rec in expired:
        if rec.blob_id is not None:
            blobs.delete(session=session, tenant_id=tenant_id, blob_id=rec.blob_id, store=store)
        rec.blob_id = None
        rec.purged_at = now
        session.add(rec)
    if expired:
        session.flush()
        audit.record(
            session=session, tenant_id=tenant_id, actor=None, action="recording.purge", object_type="call_recording",
            detail={"count": len(expired), "retention_days": days, "ids": [r.id for r in expired[:200]]},
        )
    return len(expired)


def purge_all_firms(*, session_factory: SessionFactory, now: datetime | None = None, store: storage.Store | None = None) -> dict[int, int]:
    """The daily job: :func:`purge_expired` for every firm, each in its own transaction.
    Returns the count per firm that had something to purge."""
    now = now or utcnow()
    with session_factory() as session:
        # An operator job over every firm: the tenant list itself is not tenant-owned.
        tenant_ids = list(session.exec(select(Tenant.id).order_by(Tenant.id)).all())
    purged: dict[int, int] = {}
    for tenant_id in tenant_ids:
        assert tenant_id is not None
        try:
            with session_factory() as session:
                n = purge_expired(session=session, tenant_id=tenant_id, now=now, store=store)
                session.commit()
        except Exception:  # noqa: BLE001 - one firm's failure must not stop the others' purge
            log.exception("recording retention failed for firm %s", tenant_id)
            continue
        if n:
            purged[tenant_id] = n
            log.info("recording retention: %d recording(s) of firm %s deleted", n, tenant_id)
    return purged


PURGE_INTERVAL = timedelta(days=1)


async def purge_daily(stop: asyncio.Event | None = None, *, session_factory: SessionFactory | None = None, interval: timedelta = PURGE_INTERVAL) -> None:
    """Run :func:`purge_all_firms` now and then once every ``interval`` until ``stop`` is set
    (or the task is cancelled). The database and file work runs in a thread; a failed run is
    logged and the next one runs on time."""
    factory = session_factory or db.session_scope
    stop = stop or asyncio.Event()
    while not stop.is_set():
        try:
            purged = await asyncio.to_thread(purge_all_firms, session_factory=factory)
        except Exception:  # noqa: BLE001 - the job must outlive one bad run
            log.exception("recording retention run failed; next run in %s", interval)
        else:
            log.info("recording retention run: %d recording(s) deleted in %d firm(s)", sum(purged.values()), len(purged))
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval.total_seconds())
        except asyncio.TimeoutError:
            pass
