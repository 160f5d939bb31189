"""Call analytics for a period, computed by the database with GROUP BY.

Definitions (after research/softphone.md §4; every call is counted in the period by
its ``started_at``):

- total: calls started in the period; inbound / outbound split by direction.
- answered: calls with an answer time (ANSWERED, COMPLETED, and FAILED after answer),
  both directions.
- missed: inbound calls that ended without an answer (MISSED, NO_ANSWER, REJECTED,
  BUSY, FAILED before answer). Inbound calls still ringing are offered, not missed.
- answer rate = answered inbound ÷ inbound (offered).
- service level (the "Offered" variant: abandons count against it) = inbound answered
  with ring time ≤ T ÷ inbound offered.
- ASA (average speed of answer) = mean ring seconds of answered inbound calls.
- average talk time = mean talk seconds of answered calls that have ended.
- AHT (average handle time) = (talk + hold + after-call work) per handled call. Hold and
  after-call work are not captured yet, so today AHT equals the average talk time.
- per hour / per day: by the start time in the firm's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from services.call_center._common import aware, require_member
from services.errors import Invalid
from services.models import (
    AgentStats,
    Call,
    CallDirection,
    CallStats,
    CallStatus,
    DayBucket,
    HourBucket,
    Principal,
    Role,
    Tenant,
    User,
    utcnow,
)

MAX_RANGE = timedelta(days=366, hours=1)  # the hour absorbs a DST change inside a year
MAX_SERVICE_LEVEL_THRESHOLD_S = 3600

_inbound = Call.direction == CallDirection.INBOUND
_answered = Call.answered_at.is_not(None)
_missed = sa.and_(_inbound, Call.answered_at.is_(None), Call.status.not_in([CallStatus.RINGING, CallStatus.ANSWERED]))


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _sum_if(condition: sa.ColumnElement[bool], value: Any) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=None)), 0)


def _bucket(dialect: str, seconds: int) -> tuple[sa.ColumnElement[Any], Callable[[Any], datetime]]:
    """SQL for the UTC slot of ``seconds`` a call started in, and how to read it back as a UTC time."""
    if seconds == 3600:
        if dialect == "sqlite":
            # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS…': the hour is a prefix, far
            # cheaper per row than date functions.
            return sa.func.substr(Call.started_at, 1, 13), lambda v: datetime.strptime(v, "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
        return sa.func.date_trunc("hour", Call.started_at), lambda v: v.replace(tzinfo=timezone.utc)
    if dialect == "sqlite":
        epoch = sa.cast(sa.func.strftime("%s", Call.started_at), sa.Integer)
    else:
        # timestamp without time zone: EXTRACT(EPOCH) takes the stored (UTC) wall time as is.
        epoch = sa.cast(sa.func.floor(sa.extract("epoch", Call.started_at)), sa.BigInteger)
    return epoch // seconds, lambda v: datetime.fromtimestamp(int(v) * seconds, timezone.utc)


def _bucket_seconds(tz: ZoneInfo, start: datetime, end: datetime) -> int:
    """3600 when every UTC hour of the period is one local hour, else 900.

    Zones such as Asia/Kolkata (+05:30) or Asia/Kathmandu (+05:45) split UTC hours; all
    offsets in use are multiples of 15 minutes.
    """
    moment = start
    while True:
        offset = moment.astimezone(tz).utcoffset() or timedelta(0)
        if offset % timedelta(hours=1):
            return 900
        if moment >= end:
            return 3600
        moment = min(moment + timedelta(hours=12), end)


def _period(tz: ZoneInfo, date_from: datetime | None, date_to: datetime | None) -> tuple[datetime, datetime]:
    def local_midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=tz).astimezone(timezone.utc)

    date_from = aware(date_from, "date_from")
    date_to = aware(date_to, "date_to")
    if date_from is None and date_to is None:
        today = utcnow().astimezone(tz).date()
        return local_midnight(today), local_midnight(today + timedelta(days=1))
    if date_from is None:
        assert date_to is not None
        date_from = local_midnight((date_to - timedelta(microseconds=1)).astimezone(tz).date())
    if date_to is None:
        date_to = utcnow()
    if date_from >= date_to:
        raise Invalid("date_from", "the start of the period is before its end")
    if date_to - date_from > MAX_RANGE:
        raise Invalid("date_to", "a period is at most 366 days")
    return date_from.astimezone(timezone.utc), date_to.astimezone(timezone.utc)


def _ratio(part: int | float, whole: int | float) -> float | None:
    return part / whole if whole else None


def get_stats(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    service_level_threshold_s: int = 20,
) -> CallStats:
    """Call figures of the firm (an agent: their own calls) for ``[date_from, date_to)``.

    Default period: today in the firm's time zone. Only ``date_to`` given: from the start
    of that local day; only ``date_from``: until now. At most 366 days. The module
    docstring defines every figure.
    """
    require_member(actor, tenant_id)
    if not 0 <= service_level_threshold_s <= MAX_SERVICE_LEVEL_THRESHOLD_S:
        raise Invalid("service_level_threshold_s", f"the threshold is 0 to {MAX_SERVICE_LEVEL_THRESHOLD_S} seconds")
    tz_name = session.execute(sa.select(Tenant.timezone).where(Tenant.id == tenant_id)).scalar_one()
    tz = ZoneInfo(tz_name)
    start, end = _period(tz, date_from, date_to)

    conds = [Call.tenant_id == tenant_id, Call.started_at >= start, Call.started_at < end]
    if actor.role == Role.AGENT:
        conds.append(Call.agent_user_id == actor.user_id)

    answered_in = sa.and_(_inbound, _answered)
    within = sa.and_(answered_in, Call.ring_seconds <= service_level_threshold_s)
    ended_answered = sa.and_(_answered, Call.talk_seconds.is_not(None))
    # Aggregate first, then name the few agents: joining users before grouping would look
    # one up per call.
    per_agent_sums = (
        sa.select(
            Call.agent_user_id.label("agent_user_id"),
            sa.func.count().label("total"),
            _count_if(_inbound).label("inbound"),
            _count_if(_answered).label("answered"),
            _count_if(_missed).label("missed"),
            _count_if(answered_in).label("answered_inbound"),
            _count_if(within).label("within"),
            _sum_if(answered_in, Call.ring_seconds).label("ring_sum"),
            _count_if(sa.and_(answered_in, Call.ring_seconds.is_not(None))).label("ringed"),
            _sum_if(ended_answered, Call.talk_seconds).label("talk_sum"),
            _count_if(ended_answered).label("talked"),
        )
        .where(*conds)
        .group_by(Call.agent_user_id)
        .subquery()
    )
    sums = per_agent_sums.c
    agent_rows = session.execute(
        sa.select(
            sums.agent_user_id, User.full_name, sums.total, sums.inbound, sums.answered, sums.missed,
            sums.answered_inbound, sums.within, sums.ring_sum, sums.ringed, sums.talk_sum, sums.talked,
        ).outerjoin(User, sa.and_(User.id == sums.agent_user_id, User.tenant_id == tenant_id))
    ).all()

    totals = [0] * 10
    per_agent: list[AgentStats] = []
    for agent_id, name, *figures in agent_rows:
        figures = [int(f) for f in figures]
        totals = [a + b for a, b in zip(totals, figures)]
        total, inbound, answered, missed, _, _, _, _, talk, talked = figures
        per_agent.append(
            AgentStats(
                agent_user_id=agent_id,
                agent_name=name or "",
                total=total,
                inbound=inbound,
                outbound=total - inbound,
                answered=answered,
                missed=missed,
                talk_seconds=talk,
                average_talk_seconds=_ratio(talk, talked),
            )
        )
    per_agent.sort(key=lambda a: (-a.total, a.agent_name, a.agent_user_id or 0))
    total, inbound, answered, missed, answered_inbound, in_service_level, ring_sum, ringed, talk_sum, talked = totals

    bucket_sql, bucket_start = _bucket(session.get_bind().dialect.name, _bucket_seconds(tz, start, end))
    bucket = bucket_sql.label("bucket")
    bucket_rows = session.execute(
        sa.select(bucket, sa.func.count(), _count_if(_answered), _count_if(_missed))
        .where(*conds)
        .group_by(bucket)
    ).all()
    hours = [[0, 0, 0] for _ in range(24)]
    first_day = start.astimezone(tz).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    days = {first_day + timedelta(days=i): [0, 0, 0] for i in range((last_day - first_day).days + 1)}
    for slot_value, count, ans, miss in bucket_rows:
        local = bucket_start(slot_value).astimezone(tz)
        for slot in (hours[local.hour], days[local.date()]):
            slot[0] += count
            slot[1] += int(ans)
            slot[2] += int(miss)

    average_talk = _ratio(talk_sum, talked)
    return CallStats(
        date_from=start,
        date_to=end,
        timezone=tz_name,
        total=total,
        inbound=inbound,
        outbound=total - inbound,
        answered=answered,
        missed=missed,
        answer_rate=_ratio(answered_inbound, inbound),
        service_level=_ratio(in_service_level, inbound),
        service_level_threshold_seconds=service_level_threshold_s,
        average_speed_of_answer=_ratio(ring_sum, ringed),
        average_talk_time=average_talk,
        # No hold or after-call-work data is captured yet: handle time is talk time.
        average_handle_time=average_talk,
        per_agent=per_agent,
        per_hour=[HourBucket(hour=h, total=t, answered=a, missed=m) for h, (t, a, m) in enumerate(hours)],
        per_day=[DayBucket(day=d.isoformat(), total=t, answered=a, missed=m) for d, (t, a, m) in days.items()],
    )
