"""Closing calls nobody will report as ended: a tab closed mid-call, a softphone restarted.

A RINGING call left alone becomes MISSED (inbound) or FAILED (outbound), an ANSWERED one
COMPLETED with its talk counted until the last event; an event that arrives meanwhile wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import callbacks
from services.call_center.calls import _call, _seconds
from services.errors import Invalid
from services.models import Call, CallDirection, CallStatus, Tenant, utcnow
from services.tenancy import owned_by
from services.timestamps import aware


ABANDONED_CAUSE = "abandoned"
CLIENT_LOST_CAUSE = "client_lost"


def _close_changes(row: Any, cutoff: datetime | None = None) -> dict[str, Any]:
    """Final values for an open call nobody reported as ended, as of its last update."""
    last_seen = row.updated_at if cutoff is None else min(row.updated_at, cutoff)
    if row.status == CallStatus.RINGING:
        ended = max(last_seen, row.started_at)
        status = CallStatus.MISSED if row.direction == CallDirection.INBOUND else CallStatus.FAILED
        return {"status": status, "ended_at": ended, "ring_seconds": _seconds(ended - row.started_at), "hangup_cause": ABANDONED_CAUSE}
    ended = max(last_seen, row.answered_at or row.started_at)
    talk = _seconds(ended - row.answered_at) if row.answered_at else 0
    return {"status": CallStatus.COMPLETED, "ended_at": ended, "talk_seconds": talk, "hangup_cause": CLIENT_LOST_CAUSE}


def _close_rows(session: Session, tenant_id: int, rows: list[Any], now: datetime, cutoff: datetime | None = None) -> int:
    closed = 0
    for row in rows:
        changes = _close_changes(row, cutoff)
        # Guarded by the old status: an event that arrived meanwhile wins over this guess.
        result = session.execute(
            sa.update(_call)
            .where(owned_by(_call, tenant_id), _call.c.id == row.id, _call.c.status == row.status)
            .values(**changes, updated_at=now)
        )
        if result.rowcount:
            closed += 1
            if changes["status"] == CallStatus.MISSED:
                callbacks.on_call_missed(session, tenant_id, row.id)
    return closed


_OPEN_STATUSES = (CallStatus.RINGING, CallStatus.ANSWERED)
_OPEN_ROW = (Call.id, Call.status, Call.direction, Call.started_at, Call.answered_at, Call.updated_at)


def close_stale_calls(
    *,
    session: Session,
    tenant_id: int | None = None,
    now: datetime | None = None,
    ringing_timeout_s: int = 120,
    answered_timeout_s: int = 4 * 3600,
) -> int:
    """Close calls that got no event for too long; returns how many were closed.

    RINGING with no event for ``ringing_timeout_s`` → MISSED (inbound) / FAILED
    (outbound), cause "abandoned". ANSWERED with no event for ``answered_timeout_s`` →
    COMPLETED, cause "client_lost", talk counted until the last event. All firms when
    ``tenant_id`` is None (the background job), one firm otherwise.
    """
    now = aware(now, "now") or utcnow()
    if ringing_timeout_s < 1 or answered_timeout_s < 1:
        raise Invalid("timeout", "timeouts are at least one second")
    tenant_ids = (
        [tenant_id] if tenant_id is not None else list(session.execute(sa.select(Tenant.id).order_by(Tenant.id)).scalars())
    )
    ringing_cutoff = now - timedelta(seconds=ringing_timeout_s)
    answered_cutoff = now - timedelta(seconds=answered_timeout_s)
    closed = 0
    for tid in tenant_ids:
        rows = session.execute(
            sa.select(*_OPEN_ROW).where(
                owned_by(Call, tid),
                # Only open calls, by ix_call_tenant_status_started (a few index entries): without
                # it SQLite reads every call of the firm to test the OR below (~70 ms for a firm
                # of 100,000 calls, every minute in every worker).
                Call.status.in_(_OPEN_STATUSES),
                sa.or_(
                    sa.and_(Call.status == CallStatus.RINGING, Call.updated_at < ringing_cutoff),
                    sa.and_(Call.status == CallStatus.ANSWERED, Call.updated_at < answered_cutoff),
                ),
            )
        ).all()
        closed += _close_rows(session, tid, rows, now)
    return closed


def close_open_calls_for_agent(*, session: Session, tenant_id: int, user_id: int, before: datetime) -> int:
    """Close the agent's calls still open that started before ``before`` (e.g. their
    softphone restarted, so those calls are gone); same outcomes as :func:`close_stale_calls`."""
    before = aware(before, "before")
    rows = session.execute(
        sa.select(*_OPEN_ROW).where(
            owned_by(Call, tenant_id),
            Call.agent_user_id == user_id,
            Call.status.in_(_OPEN_STATUSES),
            Call.started_at < before,
        )
    ).all()
    return _close_rows(session, tenant_id, rows, utcnow(), cutoff=before)
