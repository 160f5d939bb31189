"""One firm's CDR feed row (:class:`PbxFeed`): who reconciles it, how far it has read, its health.

**Lease.** A reconciler claims a firm's feed with a lease (``worker_id``, an expiry it renews)
and every claim bumps ``epoch``. Every write a worker makes for the firm is fenced by
``(worker_id, epoch)``: :func:`commit_batch` first updates the feed row under that condition
(on PostgreSQL this row lock also orders it against a concurrent claim) and raises
:class:`LeaseLost` when another worker holds the firm now, so the whole batch rolls back.
Like the WhatsApp sessions' leases (:mod:`services.whatsapp.leases`), plus the epoch: a
worker restarted under the same id is a new holder, and its old incarnation cannot write.

**Watermark.** The last source position stored. A catch-up batch moves it to the batch's
last position (the catch-up reads every record after it, in order); a live batch moves it
only over positions that follow it without a hole, so a record the live feed missed is
still after the watermark for the next catch-up. The batch, its legs and the watermark are
one transaction: a worker killed mid-batch leaves neither.

**Health**, as the PBX settings page shows it (:func:`get_health`): connected, the last time
a record arrived, records today (new legs, in the firm's time zone), gaps filled (catch-ups
after a lost feed that found records the live feed had missed) and the last error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from services.db import dialect_insert
from services.models import PbxFeed, PbxFeedHealth, PbxSettings, Tenant, utcnow
from services.pbx import ledger
from services.pbx.records import CdrRecord
from services.tenancy import owned_by

_feed = PbxFeed.__table__


class LeaseLost(Exception):
    """Another worker holds this firm's feed now: the batch must not be written."""


@dataclass(frozen=True)
class FeedLease:
    tenant_id: int
    epoch: int


@dataclass(frozen=True)
class BatchOutcome:
    result: ledger.IngestResult
    watermark: int
    gap_filled: bool


def _wanted() -> sa.Select:
    # Every firm's feed, across firms: the reconcilers' own job, not a user's request.
    return sa.select(PbxSettings.tenant_id).where(PbxSettings.cdr_source != "")


def _free(worker_id: str, held: Sequence[int], now: datetime) -> sa.ColumnElement[bool]:
    mine = _feed.c.worker_id == worker_id
    if held:
        mine = sa.and_(mine, _feed.c.tenant_id.not_in(held))
    return sa.or_(_feed.c.worker_id.is_(None), mine, _feed.c.lease_expires_at.is_(None), _feed.c.lease_expires_at < now)


def claim_feeds(
    *, session: Session, worker_id: str, lease_seconds: float, held: Iterable[int] = (), limit: int = 50, now: datetime | None = None
) -> list[FeedLease]:
    """Claim up to ``limit`` feeds of firms with a CDR source that no live worker holds.

    Free: no worker, a lapsed lease, or ``worker_id``'s own not in ``held`` (a restarted worker
    takes its firms back at once, under a new epoch). Candidates are locked with SKIP LOCKED
    on PostgreSQL and claimed by one conditional UPDATE, so two workers never both win.
    """
    if limit <= 0:
        return []
    now = now or utcnow()
    wanted = list(session.execute(_wanted()).scalars())
    if not wanted:
        return []
    session.execute(
        dialect_insert(session, _feed).on_conflict_do_nothing(index_elements=["tenant_id"]),
        [{"tenant_id": t, "source_kind": "", "watermark": 0, "epoch": 0, "connected": False, "records_day": "",
          "records_today": 0, "gaps_filled": 0, "updated_at": now} for t in wanted],
    )
    held_ids = sorted(set(held))
    free = _free(worker_id, held_ids, now)
    candidates = list(
        session.execute(
            sa.select(_feed.c.id).where(_feed.c.tenant_id.in_(wanted), free).order_by(_feed.c.id).limit(limit).with_for_update(skip_locked=True)
        ).scalars()
    )
    if not candidates:
        return []
    session.execute(
        sa.update(_feed)
        .where(_feed.c.id.in_(candidates), free)
        .values(worker_id=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds), epoch=_feed.c.epoch + 1,
                connected=False, updated_at=now)
    )
    rows = session.execute(
        sa.select(_feed.c.tenant_id, _feed.c.epoch).where(_feed.c.id.in_(candidates), _feed.c.worker_id == worker_id)
    ).all()
    return [FeedLease(tenant_id=t, epoch=e) for t, e in rows if t not in held_ids]


def renew_leases(
    *, session: Session, worker_id: str, held: dict[int, int], lease_seconds: float, now: datetime | None = None
) -> set[int]:
    """Extend the leases this worker still holds (same epoch, source still set); returns those firms."""
    if not held:
        return set()
    now = now or utcnow()
    rows = session.execute(
        sa.select(_feed.c.tenant_id, _feed.c.epoch).where(
            _feed.c.worker_id == worker_id, _feed.c.tenant_id.in_(list(held)), _feed.c.tenant_id.in_(_wanted())
        )
    ).all()
    kept = {t for t, e in rows if held.get(t) == e}
    if kept:
        session.execute(
            sa.update(_feed)
            .where(_feed.c.worker_id == worker_id, _feed.c.tenant_id.in_(sorted(kept)))
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
        )
    return kept


def release_leases(*, session: Session, worker_id: str, tenant_ids: Iterable[int] | None = None) -> int:
    """Give up this worker's leases (all, or ``tenant_ids``) so another worker takes them at once."""
    query = sa.update(_feed).where(_feed.c.worker_id == worker_id)
    if tenant_ids is not None:
        ids = sorted(set(tenant_ids))
        if not ids:
            return 0
        query = query.where(_feed.c.tenant_id.in_(ids))
    return session.execute(query.values(worker_id=None, lease_expires_at=None, connected=False)).rowcount


def _fence(session: Session, tenant_id: int, worker_id: str, epoch: int, now: datetime, **values: object) -> None:
    result = session.execute(
        sa.update(_feed)
        .where(owned_by(_feed, tenant_id), _feed.c.worker_id == worker_id, _feed.c.epoch == epoch)
        .values(updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise LeaseLost(f"the feed of firm {tenant_id} is no longer held by {worker_id} at epoch {epoch}")


def read_watermark(*, session: Session, tenant_id: int, worker_id: str, epoch: int) -> int:
    """The watermark, for the holder only (:class:`LeaseLost` otherwise)."""
    _fence(session, tenant_id, worker_id, epoch, utcnow())
    return session.execute(sa.select(_feed.c.watermark).where(owned_by(_feed, tenant_id))).scalar_one()


def _advance(watermark: int, positions: Iterable[int], *, live: bool) -> int:
    ordered = sorted(set(positions))
    if not live:
        return max([watermark, *ordered])
    for position in ordered:
        if position == watermark + 1:
            watermark = position
        elif position > watermark + 1:
            break
    return watermark


def commit_batch(
    *,
    session: Session,
    tenant_id: int,
    worker_id: str,
    epoch: int,
    records: Sequence[CdrRecord],
    source_kind: str,
    live: bool,
    count_gap: bool = False,
    now: datetime | None = None,
) -> BatchOutcome:
    """Ingest one batch and advance the watermark and health, fenced by the lease (flushes;
    the caller commits once, so batch and watermark are one transaction).

    ``count_gap``: this batch belongs to a catch-up after a lost feed that has not counted a
    gap yet; when it stores a leg the ledger did not have, that is a gap filled.
    """
    now = now or utcnow()
    _fence(session, tenant_id, worker_id, epoch, now)
    watermark, day, today, tz_name = session.execute(
        sa.select(_feed.c.watermark, _feed.c.records_day, _feed.c.records_today, Tenant.timezone)
        .join(Tenant, Tenant.id == tenant_id)
        .where(owned_by(_feed, tenant_id))
    ).one()
    result = ledger.ingest(session=session, tenant_id=tenant_id, records=records, now=now)
    local_day = now.astimezone(ZoneInfo(tz_name)).date().isoformat()
    values: dict[str, object] = {
        "watermark": _advance(watermark, (r.position for r in records), live=live),
        "source_kind": source_kind[:8],
        "records_day": local_day,
        "records_today": (today if day == local_day else 0) + result.legs_inserted,
    }
    if records:
        values["last_record_at"] = now
    gap = count_gap and result.legs_inserted > 0
    if gap:
        values["gaps_filled"] = _feed.c.gaps_filled + 1
        values["last_gap_at"] = now
    _fence(session, tenant_id, worker_id, epoch, now, **values)
    return BatchOutcome(result=result, watermark=int(values["watermark"]), gap_filled=gap)  # type: ignore[arg-type]


def record_state(
    *,
    session: Session,
    tenant_id: int,
    worker_id: str,
    epoch: int,
    connected: bool,
    source_kind: str = "",
    error_code: str | None = None,
    error: str | None = None,
) -> None:
    """The feed is connected (error cleared) or not (with the error's stable code and sentence);
    fenced like every write (:class:`LeaseLost`)."""
    values: dict[str, object] = {"connected": connected}
    if source_kind:
        values["source_kind"] = source_kind[:8]
    if connected:
        values.update(last_error_code=None, last_error=None)
    elif error_code is not None:
        values.update(last_error_code=error_code[:32], last_error=(error or "")[:500] or None)
    _fence(session, tenant_id, worker_id, epoch, utcnow(), **values)


def get_health(*, session: Session, tenant_id: int) -> PbxFeedHealth | None:
    """The firm's feed health for the PBX settings page; None when no feed was ever started."""
    row = session.execute(
        sa.select(_feed, Tenant.timezone).join(Tenant, Tenant.id == tenant_id).where(owned_by(_feed, tenant_id))
    ).one_or_none()
    if row is None:
        return None
    today = utcnow().astimezone(ZoneInfo(row.timezone)).date().isoformat()
    return PbxFeedHealth(
        source_kind=row.source_kind,
        connected=row.connected,
        last_record_at=row.last_record_at,
        records_today=row.records_today if row.records_day == today else 0,
        gaps_filled=row.gaps_filled,
        last_gap_at=row.last_gap_at,
        last_error_code=row.last_error_code,
        last_error=row.last_error,
    )


__all__ = [
    "BatchOutcome",
    "FeedLease",
    "LeaseLost",
    "claim_feeds",
    "commit_batch",
    "get_health",
    "read_watermark",
    "record_state",
    "release_leases",
    "renew_leases",
]
