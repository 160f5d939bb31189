# Over 400 lines on purpose: the roll-ups and the period report share every figure's SQL expression.
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
- per agent, talk time goes to the agents who talked: a call with the PBX's legs
  (services.pbx.ledger) gives each answered leg's talk to that leg's agent (a transferred
  call's talk is split between them); a call without legs gives its talk to its agent. The
  call itself (total, answered, missed, ring time) is counted once, for its agent: the one who
  answered first. Ring time and the service level come from the call's ring seconds, which
  the PBX's timestamps set once its record is in.
- AHT (average handle time) = (talk + hold + after-call work) per handled call. Hold and
  after-call work are not captured yet, so today AHT equals the average talk time.
- per hour / per day: by the start time in the firm's time zone.

Summing a month of calls on every request is too slow at 100,000 calls per firm, so hours
that ended more than ``SEAL_HORIZON`` ago are summed once per (UTC hour, agent) into
CallHourlyRollup, on the first request that needs them; every change to a call of such an
hour goes through :func:`invalidate_rollups`, which marks the hour for a recount.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from services.authz import Permission, allowed, require_member
from services.db import dialect_insert
from services.errors import Invalid
from services.models import (
    AgentStats,
    Call,
    CallDirection,
    CallHourlyRollup,
    CallLeg,
    CallRollupHour,
    CallStats,
    CallStatus,
    DayBucket,
    HourBucket,
    Principal,
    Tenant,
    User,
    utcnow,
)
from services.tenancy import owned_by
from services.timestamps import period_bound

MAX_RANGE = timedelta(days=366, hours=1)  # the hour absorbs a DST change inside a year
MAX_SERVICE_LEVEL_THRESHOLD_S = 3600
DEFAULT_SERVICE_LEVEL_THRESHOLD_S = 20  # the threshold CallHourlyRollup counts for

# An hour is sealed once it ended this long ago: longer than a call stays open (close_stale_calls
# closes an answered call after 4 h), so sealed hours rarely change and their figures are
# summed once into CallHourlyRollup. Changes that still come are caught by invalidate_rollups.
SEAL_HORIZON = timedelta(hours=6)
# Writes check against an hour less than the seal: a transaction still open while its hour
# gets sealed (and summed without its change) is then still marked once it commits.
_CHECK_AFTER = SEAL_HORIZON - timedelta(hours=1)
_HOUR = timedelta(hours=1)
_CLAIM_CHUNK = 2000  # rows per multi-row INSERT, well inside every driver's parameter limit
_RUNS_PER_STATEMENT = 200

_inbound = Call.direction == CallDirection.INBOUND
_answered = Call.answered_at.is_not(None)
_missed = sa.and_(_inbound, Call.answered_at.is_(None), Call.status.not_in([CallStatus.RINGING, CallStatus.ANSWERED]))
_rollup = CallHourlyRollup.__table__
_rollup_hour = CallRollupHour.__table__


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _sum_if(condition: sa.ColumnElement[bool], value: Any) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=None)), 0)


@lru_cache(maxsize=64)
def _figures(threshold_s: int) -> tuple[sa.ColumnElement[int], ...]:
    """The sums every figure is derived from, in the order of the rollup's columns (the last
    two: the agent's own talk from calls without PBX legs; :func:`_leg_figures` adds the legs')."""
    answered_in = sa.and_(_inbound, _answered)
    ended_answered = sa.and_(_answered, Call.talk_seconds.is_not(None))
    own_talk = sa.and_(ended_answered, Call.pbx_linked_id.is_(None))
    return (
        sa.func.count(),
        _count_if(_inbound),
        _count_if(_answered),
        _count_if(_missed),
        _count_if(answered_in),
        _count_if(sa.and_(answered_in, Call.ring_seconds <= threshold_s)),
        _sum_if(answered_in, Call.ring_seconds),
        _count_if(sa.and_(answered_in, Call.ring_seconds.is_not(None))),
        _sum_if(ended_answered, Call.talk_seconds),
        _count_if(ended_answered),
        _sum_if(own_talk, Call.talk_seconds),
        _count_if(own_talk),
    )


_FIGURE_COLUMNS = [
    "total", "inbound", "answered", "missed", "answered_inbound", "answered_inbound_within_20s",
    "ring_seconds_sum", "ring_count", "talk_seconds_sum", "talk_count", "agent_talk_seconds_sum", "agent_talk_count",
]
_CALL_FIGURES = len(_FIGURE_COLUMNS) - 2


def _leg_figures(tenant_id: int, key: Any, conds: list[Any], agent_only: int | None, *, join: bool = True) -> sa.Select[Any]:
    """Per (``key``, leg agent): the answered legs' talk of the calls matching ``conds``, as
    rows shaped like :func:`_figures` (the call figures zero: the call is counted once, by
    its own row)."""
    # Grouped by an expression, not the bare column: SQLite would otherwise walk the firm's
    # legs in ix_call_leg_tenant_agent_started (already grouped) instead of the period's.
    agent = (CallLeg.agent_user_id + 0).label("agent_user_id")
    query = (
        sa.select(
            *([key] if key is not None else []),
            agent,
            *(sa.literal(0) for _ in range(_CALL_FIGURES)),
            sa.func.coalesce(sa.func.sum(CallLeg.talk_seconds), 0),
            sa.func.count(),
        )
        .select_from(CallLeg)
        .where(owned_by(CallLeg, tenant_id), CallLeg.answered_at.is_not(None), *conds)
    )
    if join:
        query = query.join(Call, sa.and_(Call.id == CallLeg.call_id, owned_by(Call, tenant_id)))
    if agent_only is not None:
        query = query.where(CallLeg.agent_user_id == agent_only)
    return query.group_by(*([key, agent] if key is not None else [agent]))
_WITHIN = _FIGURE_COLUMNS.index("answered_inbound_within_20s")


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted whole hours as [start, end) runs of consecutive hours."""
    runs: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour:
            runs[-1] = (runs[-1][0], hour + _HOUR)
        else:
            runs.append((hour, hour + _HOUR))
    return runs


def _in_runs(column: Any, runs: list[tuple[datetime, datetime]]) -> sa.ColumnElement[bool]:
    return sa.or_(*(sa.and_(column >= a, column < b) for a, b in runs))


def invalidate_rollups(session: Session, tenant_id: int, started_ats: Iterable[datetime], now: datetime) -> None:
    """Mark the rolled-up hours of changed calls stale; every write to calls reports here.

    Costs one comparison for calls of the last hours (never rolled up). Older hours are
    marked, not deleted: a request summing that hour concurrently either sees this change
    or leaves the mark for the next one (its claim on the hour waits for this transaction).
    """
    limit = now - _CHECK_AFTER
    hours = sorted({_floor_hour(t) for t in started_ats if t < limit})
    if not hours:
        return
    insert = dialect_insert(session, _rollup_hour)
    session.execute(
        insert.on_conflict_do_update(index_elements=["tenant_id", "hour_start"], set_={"stale": True}),
        [{"tenant_id": tenant_id, "hour_start": h, "stale": True} for h in hours],
    )


def _hour_of_start(dialect: str) -> sa.ColumnElement[Any]:
    """SQL for the UTC hour a call started in, as a value of CallHourlyRollup.hour_start."""
    if dialect == "sqlite":
        # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff': keep the same shape so
        # hour_start compares as text with the bound times of queries.
        return sa.func.substr(Call.started_at, 1, 13).concat(":00:00.000000")
    return sa.func.date_trunc("hour", Call.started_at)


def _ensure_rollups(session: Session, dialect: str, tenant_id: int, lo: datetime, hi: datetime) -> None:
    """Sum every hour of [lo, hi) (sealed, whole hours) not yet in CallHourlyRollup or stale."""
    expected = (hi - lo) // _HOUR
    fresh_hours = sa.select(_rollup_hour.c.hour_start).where(
        owned_by(_rollup_hour, tenant_id),
        _rollup_hour.c.hour_start >= lo,
        _rollup_hour.c.hour_start < hi,
        _rollup_hour.c.stale.is_(False),
    )
    if session.execute(sa.select(sa.func.count()).select_from(fresh_hours.subquery())).scalar_one() == expected:
        return
    fresh = set(session.execute(fresh_hours).scalars())
    # Claim the missing and stale hours: the rows an upsert inserted or turned fresh. A
    # concurrent request claiming the same hour waits for this one and then finds it fresh,
    # so each hour's rows are written once.
    claim = (
        dialect_insert(session, _rollup_hour)
        .on_conflict_do_update(
            index_elements=["tenant_id", "hour_start"], set_={"stale": False}, where=_rollup_hour.c.stale
        )
        .returning(_rollup_hour.c.hour_start)
    )
    hours = [h for h in (lo + i * _HOUR for i in range(expected)) if h not in fresh]
    claimed: list[datetime] = []
    for i in range(0, len(hours), _CLAIM_CHUNK):
        rows = [{"tenant_id": tenant_id, "hour_start": h, "stale": False} for h in hours[i : i + _CLAIM_CHUNK]]
        claimed += session.execute(claim.values(rows)).scalars()
    if not claimed:
        return
    runs = _runs(sorted(claimed))
    hour = _hour_of_start(dialect)
    # A bounded number of runs per statement: SQLite nests an OR chain one level per term.
    for i in range(0, len(runs), _RUNS_PER_STATEMENT):
        batch = runs[i : i + _RUNS_PER_STATEMENT]
        session.execute(sa.delete(_rollup).where(owned_by(_rollup, tenant_id), _in_runs(_rollup.c.hour_start, batch)))
        sums = (
            sa.select(sa.literal(tenant_id), hour, Call.agent_user_id, *_figures(DEFAULT_SERVICE_LEVEL_THRESHOLD_S))
            .where(owned_by(Call, tenant_id), _in_runs(Call.started_at, batch))
            .group_by(hour, Call.agent_user_id)
        )
        columns = ["tenant_id", "hour_start", "agent_user_id", *_FIGURE_COLUMNS]
        session.execute(sa.insert(_rollup).from_select(columns, sums))
        # The legs' talk, by the agent of each leg: rows of their own (an hour's agent may have
        # several rows; readers sum them).
        legs = _leg_figures(tenant_id, hour, [_in_runs(Call.started_at, batch)], None).add_columns(sa.literal(tenant_id))
        leg_columns = ["hour_start", "agent_user_id", *_FIGURE_COLUMNS, "tenant_id"]
        session.execute(sa.insert(_rollup).from_select(leg_columns, legs))


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

    date_from = period_bound(date_from, "date_from")
    date_to = period_bound(date_to, "date_to")
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


def _raw_agent_rows(session: Session, conds: list[Any], threshold_s: int) -> list[Any]:
    return session.execute(
        sa.select(Call.agent_user_id, *_figures(threshold_s)).where(*conds).group_by(Call.agent_user_id)
    ).all()


def _raw_bucket_rows(session: Session, dialect: str, seconds: int, conds: list[Any]) -> list[tuple[datetime, int, int, int]]:
    bucket_sql, bucket_start = _bucket(dialect, seconds)
    bucket = bucket_sql.label("bucket")
    rows = session.execute(
        sa.select(bucket, sa.func.count(), _count_if(_answered), _count_if(_missed)).where(*conds).group_by(bucket)
    ).all()
    return [(bucket_start(slot), int(n), int(a), int(m)) for slot, n, a, m in rows]


def get_stats(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    service_level_threshold_s: int = DEFAULT_SERVICE_LEVEL_THRESHOLD_S,
) -> CallStats:
    """Call figures of the firm (an agent: their own calls) for ``[date_from, date_to)``.

    Default period: today in the firm's time zone. Only ``date_to`` given: from the start
    of that local day; only ``date_from``: until now. At most 366 days. The module
    docstring defines every figure.

    Sealed whole hours of the period (ended ``SEAL_HORIZON`` ago) are read from
    CallHourlyRollup, summed on first use; the recent hours and the partial hours at the
    edges from the calls. Figures the rollups cannot give are computed from the calls for
    the whole period: per hour/day in a zone whose offset is not whole hours, and the
    service level for a threshold other than 20 s. Either way the figures are those of
    the calls themselves.
    """
    require_member(actor, tenant_id)
    if not 0 <= service_level_threshold_s <= MAX_SERVICE_LEVEL_THRESHOLD_S:
        raise Invalid("service_level_threshold_s", f"the threshold is 0 to {MAX_SERVICE_LEVEL_THRESHOLD_S} seconds")
    tz_name = session.execute(sa.select(Tenant.timezone).where(Tenant.id == tenant_id)).scalar_one()
    tz = ZoneInfo(tz_name)
    start, end = _period(tz, date_from, date_to)
    dialect = session.get_bind().dialect.name
    agent_only = None if allowed(actor, Permission.VIEW_ALL_CALLS) else actor.user_id

    def calls_between(a: datetime, b: datetime) -> list[Any]:
        conds = [owned_by(Call, tenant_id), Call.started_at >= a, Call.started_at < b]
        if agent_only is not None:
            conds.append(Call.agent_user_id == agent_only)
        return conds

    def legs_between(a: datetime, b: datetime) -> list[Any]:
        # The period's calls first (the history index), then their legs (ix_call_leg_tenant_call):
        # a join lets SQLite walk every leg of the firm instead.
        ids = sa.select(Call.id).where(owned_by(Call, tenant_id), Call.started_at >= a, Call.started_at < b)
        return list(session.execute(_leg_figures(tenant_id, None, [CallLeg.call_id.in_(ids)], agent_only, join=False)).all())

    # The sealed whole hours inside the period: [lo, hi).
    lo = _floor_hour(start) + (_HOUR if _floor_hour(start) < start else timedelta(0))
    hi = min(_floor_hour(end), _floor_hour(utcnow() - SEAL_HORIZON))
    rolled = lo < hi
    raw_parts = [(a, b) for a, b in ((start, lo), (hi, end)) if a < b] if rolled else [(start, end)]

    agent_rows: list[Any] = []
    extra_within = 0
    for a, b in raw_parts:
        agent_rows += _raw_agent_rows(session, calls_between(a, b), service_level_threshold_s)
        agent_rows += legs_between(a, b)
    if rolled:
        _ensure_rollups(session, dialect, tenant_id, lo, hi)
        in_span = [owned_by(_rollup, tenant_id), _rollup.c.hour_start >= lo, _rollup.c.hour_start < hi]
        if agent_only is not None:
            in_span.append(_rollup.c.agent_user_id == agent_only)
        rolled_rows = session.execute(
            sa.select(_rollup.c.agent_user_id, *(sa.func.sum(_rollup.c[name]) for name in _FIGURE_COLUMNS))
            .where(*in_span)
            .group_by(_rollup.c.agent_user_id)
        ).all()
        if service_level_threshold_s != DEFAULT_SERVICE_LEVEL_THRESHOLD_S:
            # The rollups count ring times up to 20 s only: count this threshold from the calls.
            rolled_rows = [(agent, *sums[:_WITHIN], 0, *sums[_WITHIN + 1 :]) for agent, *sums in rolled_rows]
            within = _figures(service_level_threshold_s)[_WITHIN]
            extra_within = int(session.execute(sa.select(within).where(*calls_between(lo, hi))).scalar_one())
        agent_rows += rolled_rows

    by_agent: dict[int | None, list[int]] = {}
    for agent_id, *figures in agent_rows:
        sums = by_agent.setdefault(agent_id, [0] * len(_FIGURE_COLUMNS))
        for i, value in enumerate(figures):
            sums[i] += int(value or 0)
    totals = [sum(column) for column in zip(*by_agent.values())] if by_agent else [0] * len(_FIGURE_COLUMNS)
    totals[_WITHIN] += extra_within
    # Named after aggregating: joining users before grouping would look one up per call.
    named = [agent_id for agent_id in by_agent if agent_id is not None]
    names = dict(
        session.execute(sa.select(User.id, User.full_name).where(owned_by(User, tenant_id), User.id.in_(named))).all()
    ) if named else {}
    per_agent: list[AgentStats] = []
    for agent_id, (total, inbound, answered, missed, *_, talk, talked) in by_agent.items():
        per_agent.append(
            AgentStats(
                agent_user_id=agent_id,
                agent_name=names.get(agent_id, ""),
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
    total, inbound, answered, missed, answered_inbound, in_service_level, ring_sum, ringed, talk_sum, talked = totals[:_CALL_FIGURES]

    seconds = _bucket_seconds(tz, start, end)
    if seconds == 3600:
        buckets: list[tuple[datetime, int, int, int]] = []
        for a, b in raw_parts:
            buckets += _raw_bucket_rows(session, dialect, seconds, calls_between(a, b))
        if rolled:
            buckets += [
                (hour, int(n), int(ans), int(miss))
                for hour, n, ans, miss in session.execute(
                    sa.select(
                        _rollup.c.hour_start, sa.func.sum(_rollup.c.total), sa.func.sum(_rollup.c.answered),
                        sa.func.sum(_rollup.c.missed),
                    )
                    .where(*in_span)
                    .group_by(_rollup.c.hour_start)
                )
            ]
    else:
        # UTC hours straddle two local hours here: count the period's calls in quarter hours.
        buckets = _raw_bucket_rows(session, dialect, seconds, calls_between(start, end))
    hours = [[0, 0, 0] for _ in range(24)]
    first_day = start.astimezone(tz).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    days = {first_day + timedelta(days=i): [0, 0, 0] for i in range((last_day - first_day).days + 1)}
    for slot_start, count, ans, miss in buckets:
        local = slot_start.astimezone(tz)
        for slot in (hours[local.hour], days[local.date()]):
            slot[0] += count
            slot[1] += ans
            slot[2] += miss

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
