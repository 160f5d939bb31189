"""The wallboard's picture of the floor, read in one go: every agent's state, calls in
progress, callers ringing and the longest ring, today's figures and the callback queue.

Read again on each live change (agents, callbacks, calls) of the firm, never polled.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from services import callbacks, presence
from services.authz import Permission, require
from services.call_center.stats import get_stats
from services.models import AgentStatePublic, Call, CallbackPublic, CallDirection, CallStatus, Principal, utcnow
from services.tenancy import owned_by

# A call still RINGING after this long is left over (its tab closed); the stale sweep closes it.
_RINGING_HORIZON_S = 15 * 60


class Wallboard(SQLModel):
    at: datetime
    agents: list[AgentStatePublic]
    calls_in_progress: int
    callers_ringing: int
    longest_ring_started_at: datetime | None
    answered_today: int
    missed_today: int
    service_level: float | None
    average_speed_of_answer: float | None
    callbacks_open: int
    callbacks_over_target: int
    oldest_callback_at: datetime | None
    callbacks: list[CallbackPublic]


def _call_key(sip_call_id: str | None, linked_id: str | None, call_id: int) -> str:
    # The legs of one caller's call (a ring group rings every agent) are one caller.
    if linked_id:
        return f"pbx:{linked_id}"
    return f"sip:{sip_call_id.split(';')[0]}" if sip_call_id else f"call:{call_id}"


def snapshot(*, session: Session, tenant_id: int, actor: Principal, now: datetime | None = None) -> Wallboard:
    """OWNER/ADMIN/MANAGER: the whole board as of ``now``."""
    require(actor, Permission.VIEW_ALL_CALLS, tenant_id=tenant_id)
    now = now or utcnow()
    open_calls = session.execute(
        sa.select(Call.id, Call.sip_call_id, Call.pbx_linked_id, Call.status, Call.direction, Call.started_at).where(
            owned_by(Call, tenant_id),
            sa.or_(
                Call.status == CallStatus.ANSWERED,
                sa.and_(Call.status == CallStatus.RINGING, Call.updated_at >= now - timedelta(seconds=_RINGING_HORIZON_S)),
            ),
        )
    ).all()
    talking = {_call_key(sip, linked, cid) for cid, sip, linked, status, _, _ in open_calls if status == CallStatus.ANSWERED}
    ringing: dict[str, datetime] = {}
    for cid, sip, linked, status, direction, started in open_calls:
        key = _call_key(sip, linked, cid)
        if status == CallStatus.RINGING and direction == CallDirection.INBOUND and key not in talking:
            ringing[key] = min(started, ringing.get(key, started))
    stats = get_stats(session=session, tenant_id=tenant_id, actor=actor)
    queue = callbacks.list_callbacks(session=session, tenant_id=tenant_id, actor=actor, now=now)
    return Wallboard(
        at=now,
        agents=presence.list_states(session=session, tenant_id=tenant_id, actor=actor),
        calls_in_progress=len(talking),
        callers_ringing=len(ringing),
        longest_ring_started_at=min(ringing.values(), default=None),
        answered_today=stats.answered,
        missed_today=stats.missed,
        service_level=stats.service_level,
        average_speed_of_answer=stats.average_speed_of_answer,
        callbacks_open=len(queue),
        callbacks_over_target=sum(1 for item in queue if item.over_target),
        oldest_callback_at=queue[0].first_missed_at if queue else None,
        callbacks=queue,
    )

