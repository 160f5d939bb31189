# Over 400 lines on purpose: the rollups' reads and the edges' counts share every figure's SQL expression.
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

Summing a month of calls on every request is too slow at 100,000 calls per firm, so the figures
are kept per (firm, UTC hour, agent) in ``call_stats_hour`` and per (firm, UTC day, agent) in
``call_stats_day`` by database triggers, in the same transaction as every change to a call or a
leg. There is no cold path: no request ever sums calls into them.

- Who keeps them right: every writer of ``call`` and ``call_leg`` rows, whoever it is
  (log_call, status changes, softphone events, the PBX ledger's bulk ingest and its folding
  of duplicate rows, stale-call closing, the audited delete, a deleted user's SET NULL, a
  deleted firm's cascade, a migration's UPDATE): the triggers see them all, so there is no
  function a new writer could forget. :mod:`services.models.call_stats_triggers` says why
  triggers rather than a delta every writer applies, the invariant each trigger keeps, and
  how deletions and cascades are ordered on both databases. The cost: one UPSERT per
  rollup table inside the statement that writes the row, no read-modify-write in Python,
  no extra round trip (bench_call_center measures an INSERT with and without them).
- What a request reads: the whole UTC days of its period from ``call_stats_day`` (per agent),
  its other whole UTC hours from ``call_stats_hour``, and only the partial hours at its edges
  (under an hour each) from the calls and their legs. Per hour and per day, the whole hours
  from ``call_stats_hour``.
- Time zones: an hour's row is one local hour in a zone whose offset is whole hours; where
  the offset has half or quarter hours (Asia/Kolkata, Asia/Kathmandu) the hour's calls are
  split by the ``*_before_15/30/45`` columns, so each quarter of it lands in its local hour
  and local day, exactly as if counted from the calls. A period bounded by local midnights
  in such a zone starts and ends mid-hour: those edges come from the calls. Per-agent
  figures do not depend on the zone, so UTC days serve every firm.
- The service level: the rollups count the default 20 s; another threshold is counted from
  the calls for the whole period (exact, not the fast path).
- Per-agent talk from the PBX's legs: the legs' triggers add each answered leg's talk to the
  rows of the leg's agent in the hour and day its call started, so the rows sum as the calls
  do; a call's own talk counts for its agent only while it has no PBX linked id.
- Tested: tests/test_stats_rollups.py runs random sequences through every writer and checks,
  on SQLite and PostgreSQL, that the rows equal a rebuild from the calls and that each
  figure equals the same request counted from the calls alone.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session

from services.authz import Permission, allowed, require_member
from services.db import Prepared
from services.errors import Invalid
from services.models import (
    Call,
    CallDirection,
    CallLeg,
    CallStats,
    CallStatsDay,
    CallStatsHour,
    CallStatus,
    Principal,
    Tenant,
    User,
    utcnow,
)
from services.models.call_stats import CALL_FIGURES, ROLLUP_SERVICE_LEVEL_S, SPLIT_FIGURES
from services.tenancy import owned_by, owned_join
from services.timestamps import period_bound

MAX_RANGE = timedelta(days=366, hours=1)  # the hour absorbs a DST change inside a year
MAX_SERVICE_LEVEL_THRESHOLD_S = 3600
DEFAULT_SERVICE_LEVEL_THRESHOLD_S = ROLLUP_SERVICE_LEVEL_S  # the threshold call_stats_hour counts for
_HOUR = timedelta(hours=1)
_QUARTER = timedelta(minutes=15)

_inbound = Call.direction == CallDirection.INBOUND
_answered = Call.answered_at.is_not(None)
# (Two comparisons rather than NOT IN: an expanding IN list is re-rendered at every execution.)
_missed = sa.and_(_inbound, Call.answered_at.is_(None), Call.status != CallStatus.RINGING, Call.status != CallStatus.ANSWERED)
_rollup = CallStatsHour.__table__
_days = CallStatsDay.__table__
_DAY = timedelta(days=1)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _sum_if(condition: sa.ColumnElement[bool], value: Any) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=None)), 0)


_threshold = sa.bindparam("threshold", type_=sa.Integer)


def _figures(threshold: Any = _threshold) -> tuple[sa.ColumnElement[int], ...]:
    """The sums every figure is derived from, in the order of the rollup's columns (the last
    two: the agent's own talk from calls without PBX legs; the legs' talk is added by agent)."""
    answered_in = sa.and_(_inbound, _answered)
    ended_answered = sa.and_(_answered, Call.talk_seconds.is_not(None))
    own_talk = sa.and_(ended_answered, Call.pbx_linked_id.is_(None))
    return (
        sa.func.count(),
        _count_if(_inbound),
        _count_if(_answered),
        _count_if(_missed),
        _count_if(answered_in),
        _count_if(sa.and_(answered_in, Call.ring_seconds <= threshold)),
        _sum_if(answered_in, Call.ring_seconds),
        _count_if(sa.and_(answered_in, Call.ring_seconds.is_not(None))),
        _sum_if(ended_answered, Call.talk_seconds),
        _count_if(ended_answered),
        _sum_if(own_talk, Call.talk_seconds),
        _count_if(own_talk),
    )


_FIGURE_COLUMNS = list(CALL_FIGURES)
_CALL_FIGURES = len(_FIGURE_COLUMNS) - 2
_WITHIN = _FIGURE_COLUMNS.index("answered_inbound_within_20s")
_AGENT_TALK_COUNT = _FIGURE_COLUMNS.index("agent_talk_count")

# Every statement of a request is built once, its values bound at execution: building and
# keying a statement costs more than SQLite takes to answer it. Bound names: tenant_id,
# agent (NULL: every agent), lo/hi (the rollups' whole hours), a1/b1/a2/b2 (the edges read
# from the calls; an unused one is empty), threshold.
_tenant = sa.bindparam("tenant_id", type_=sa.Integer)
_agent = sa.bindparam("agent", type_=sa.Integer)
_TIMEZONE = Prepared(sa.select(Tenant.timezone).where(Tenant.id == _tenant))
_in_span = sa.and_(
    owned_by(_rollup, _tenant),
    _rollup.c.hour_start >= sa.bindparam("lo"),
    _rollup.c.hour_start < sa.bindparam("hi"),
    sa.or_(_agent.is_(None), _rollup.c.agent_key == _agent),
)


def _agent_rows_of(table: sa.Table, slot: sa.Column[Any], lo: str, hi: str) -> sa.Select[Any]:
    # ``rollup_within`` is 0 when the request asks another service-level threshold than the
    # rollups count (that figure then comes from the calls).
    within = sa.bindparam("rollup_within", type_=sa.Integer)
    figures = (table.c[name] * within if name == "answered_inbound_within_20s" else table.c[name] for name in _FIGURE_COLUMNS)
    return sa.select(table.c.agent_key, *(f.label(name) for f, name in zip(figures, _FIGURE_COLUMNS))).where(
        owned_by(table, _tenant), slot >= sa.bindparam(lo), slot < sa.bindparam(hi),
        sa.or_(_agent.is_(None), table.c.agent_key == _agent),
    )


# The calls of the edges: one index range each, united (an OR of ranges under the firm's
# condition makes SQLite walk all the firm's calls instead). The outer queries take the ids
# alone: naming the firm again would make SQLite read by the firm's index, not these ids.
_EDGE_IDS = sa.union_all(*(
    sa.select(Call.id).where(owned_by(Call, _tenant), Call.started_at >= sa.bindparam(a), Call.started_at < sa.bindparam(b))
    for a, b in (("a1", "b1"), ("a2", "b2"))
))
_edge_calls = sa.and_(Call.id.in_(_EDGE_IDS), sa.or_(_agent.is_(None), Call.agent_user_id == _agent))
_call_agent = sa.func.coalesce(Call.agent_user_id, 0)
# The legs' agent as an expression, not the bare column: SQLite would otherwise walk the
# firm's legs in ix_call_leg_tenant_agent_started (already grouped) instead of the period's.
_leg_agent = sa.func.coalesce(CallLeg.agent_user_id + 0, 0)



@lru_cache(maxsize=2)
def _agents(edges: bool) -> Prepared:
    """Per agent, ONE statement: the whole UTC days from call_stats_day [dlo, dhi), the other
    whole hours from call_stats_hour ([lo, dlo), [dhi, hi)) and, when the period has partial
    hours at its edges, their calls and answered legs (each leg's talk to its agent; the call
    figures zero: the call is counted once, by its own row); summed by agent (0: none), named."""
    parts: list[sa.Select[Any]] = [
        _agent_rows_of(_days, _days.c.day_start, "dlo", "dhi"),
        _agent_rows_of(_rollup, _rollup.c.hour_start, "lo", "dlo"),
        _agent_rows_of(_rollup, _rollup.c.hour_start, "dhi", "hi"),
    ]
    if edges:
        parts.append(sa.select(_call_agent, *_figures()).where(_edge_calls).group_by(_call_agent))
        parts.append(
            sa.select(
                _leg_agent, *(sa.literal(0) for _ in range(_CALL_FIGURES)),
                sa.func.coalesce(sa.func.sum(CallLeg.talk_seconds), 0), sa.func.count(),
            )
            .where(
                owned_by(CallLeg, _tenant), CallLeg.answered_at.is_not(None), CallLeg.call_id.in_(_EDGE_IDS),
                sa.or_(_agent.is_(None), CallLeg.agent_user_id == _agent),
            )
            .group_by(_leg_agent)
        )
    rows = sa.union_all(*parts).subquery()
    return Prepared(
        sa.select(rows.c.agent_key, User.full_name, *(sa.func.sum(rows.c[name]) for name in _FIGURE_COLUMNS))
        .select_from(rows)
        .outerjoin(User, owned_join(User, User.id == rows.c.agent_key, _tenant))
        .group_by(rows.c.agent_key, User.full_name)
    )


# (total, answered, missed) of the calls started before minute 15, 30, 45 and 60 of each hour.
_ROLLED_QUARTERS = Prepared(
    sa.select(_rollup.c.hour_start, *(sa.func.sum(_rollup.c[name]) for name in (*SPLIT_FIGURES, "total", "answered", "missed")))
    .where(_in_span)
    .group_by(_rollup.c.hour_start)
)


def _epoch(dialect: str, column: Any) -> Any:
    if dialect == "sqlite":
        return sa.cast(sa.func.strftime("%s", column), sa.Integer)
    return sa.cast(sa.func.floor(sa.extract("epoch", column)), sa.BigInteger)


@lru_cache(maxsize=8)
def _hours(dialect: str, edges: bool) -> Prepared:
    """Per UTC hour, ONE statement: the whole hours' rollups and (``edges``) the edges' calls,
    each hour as seconds since the epoch (plain integers: no time objects to make for a
    month's 720 rows) with its calls, answered and missed."""
    sums = (sa.func.sum(_rollup.c[name]) for name in ("total", "answered", "missed"))
    rolled = sa.select(_epoch(dialect, _rollup.c.hour_start), *sums).where(_in_span).group_by(_rollup.c.hour_start)
    if not edges:
        return Prepared(rolled)
    edge_hour = _bucket(dialect, 3600)[0]
    return Prepared(sa.union_all(
        rolled, sa.select(edge_hour, sa.func.count(), _count_if(_answered), _count_if(_missed)).where(_edge_calls).group_by(edge_hour)
    ))


# Another service-level threshold than the rollups': counted from the calls of the whole hours.
_WITHIN_SPAN = Prepared(sa.select(_figures()[_WITHIN]).where(
    owned_by(Call, _tenant), Call.started_at >= sa.bindparam("lo"), Call.started_at < sa.bindparam("hi"),
    sa.or_(_agent.is_(None), Call.agent_user_id == _agent),
))


@lru_cache(maxsize=8)
def _edge_buckets(dialect: str, seconds: int) -> tuple[Prepared, Callable[[Any], datetime]]:
    bucket_sql, bucket_start = _bucket(dialect, seconds)
    bucket = bucket_sql.label("bucket")
    query = sa.select(bucket, sa.func.count(), _count_if(_answered), _count_if(_missed)).where(_edge_calls).group_by(bucket)
    return Prepared(query), bucket_start


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _rollup_span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC hours inside ``[start, end)``, read from the rollups; the rest of the
    period (under an hour at each edge) is counted from the calls."""
    lo = _floor_hour(start)
    return (lo + _HOUR if lo < start else lo), _floor_hour(end)


def _bucket(dialect: str, seconds: int) -> tuple[sa.ColumnElement[Any], Callable[[Any], datetime]]:
    """SQL for the UTC slot of ``seconds`` (900 or 3600) a call started in, as seconds since
    the epoch at the slot's start, and how to read it back as a UTC time."""
    if dialect == "sqlite":
        # Stored as naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'. SQLite's date functions round
        # to milliseconds (23:59:59.9999 would become the next day): the minute is cut from the
        # text first, as the triggers cut the hour and the minute.
        epoch = sa.cast(sa.func.strftime("%s", sa.func.substr(Call.started_at, 1, 16)), sa.Integer)
    else:
        # timestamp without time zone: EXTRACT(EPOCH) takes the stored (UTC) wall time as is.
        epoch = sa.cast(sa.func.floor(sa.extract("epoch", Call.started_at)), sa.BigInteger)
    return epoch // seconds * seconds, lambda v: datetime.fromtimestamp(int(v), timezone.utc)


def _zone_in(tz: ZoneInfo, start: datetime, end: datetime) -> tuple[int, int | None]:
    """How the zone cuts the period: (3600 when every UTC hour of it is one local hour, else
    900; the zone's offset in seconds when it is the same all through, else None).

    Zones such as Asia/Kolkata (+05:30) or Asia/Kathmandu (+05:45) split UTC hours; all
    offsets in use are multiples of 15 minutes, and none changes twice within 12 hours.
    """
    offsets: set[timedelta] = set()
    moment = start
    while True:
        offsets.add(moment.astimezone(tz).utcoffset() or timedelta(0))
        if moment >= end:
            break
        moment = min(moment + timedelta(hours=12), end)
    seconds = 900 if any(offset % timedelta(hours=1) for offset in offsets) else 3600
    return seconds, int(offsets.pop().total_seconds()) if len(offsets) == 1 else None


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
    docstring defines every figure and says how they are read: whole UTC hours from
    ``call_stats_hour``, the partial hours at the edges from the calls; the service level
    for a threshold other than 20 s from the calls.
    """
    require_member(actor, tenant_id)
    if not 0 <= service_level_threshold_s <= MAX_SERVICE_LEVEL_THRESHOLD_S:
        raise Invalid("service_level_threshold_s", f"the threshold is 0 to {MAX_SERVICE_LEVEL_THRESHOLD_S} seconds")
    conn = session.connection()
    (tz_name,) = _TIMEZONE.all(conn, {"tenant_id": tenant_id})[0]
    tz = ZoneInfo(tz_name)
    start, end = _period(tz, date_from, date_to)
    agent_only = None if allowed(actor, Permission.VIEW_ALL_CALLS) else actor.user_id

    lo, hi = _rollup_span(start, end)
    rolled = lo < hi
    raw_parts = [(a, b) for a, b in ((start, lo), (hi, end)) if a < b] if rolled else [(start, end)]
    if not rolled:
        lo = hi = start  # no whole hour: the rollups' ranges are empty
    # The whole UTC days inside the whole hours, if any (else an empty range of days).
    dlo = lo.replace(hour=0) + (_DAY if lo.hour else timedelta(0))
    dhi = hi.replace(hour=0)
    if dlo >= dhi:
        dlo = dhi = hi
    # The edges read from the calls (an unused one empty).
    (a1, b1), (a2, b2) = (raw_parts + [(start, start), (start, start)])[:2]
    other_threshold = service_level_threshold_s != DEFAULT_SERVICE_LEVEL_THRESHOLD_S
    params: dict[str, Any] = {
        "tenant_id": tenant_id, "agent": agent_only, "lo": lo, "hi": hi, "dlo": dlo, "dhi": dhi,
        "a1": a1, "b1": b1, "a2": a2, "b2": b2, "threshold": service_level_threshold_s, "rollup_within": 0 if other_threshold else 1,
    }

    # (agent, name, figures...): the whole days' and hours' rollups, the edges' calls and legs.
    # Agent 0 is "no agent" (a key cannot be NULL).
    edges = bool(raw_parts)
    agent_rows = [(agent or None, name, *sums) for agent, name, *sums in _agents(edges).all(conn, params)]
    extra_within = 0
    if rolled and other_threshold:
        # The rollups count ring times up to 20 s only: count this threshold from the calls.
        extra_within = int(_WITHIN_SPAN.all(conn, params)[0][0])

    by_agent: dict[int | None, list[int]] = {}
    names: dict[int | None, str] = {}
    for agent_id, name, *figures in agent_rows:
        sums = by_agent.setdefault(agent_id, [0] * len(_FIGURE_COLUMNS))
        names[agent_id] = name or ""
        for i, value in enumerate(figures):
            sums[i] += int(value or 0)
    # A rollup row whose calls all moved away (to another agent, hour or the bin) sums to zero:
    # such an agent has no call and no talk in the period, as if counted from the calls.
    by_agent = {a: sums for a, sums in by_agent.items() if sums[0] or sums[_AGENT_TALK_COUNT]}
    totals = [sum(column) for column in zip(*by_agent.values())] if by_agent else [0] * len(_FIGURE_COLUMNS)
    totals[_WITHIN] += extra_within
    per_agent: list[dict[str, Any]] = []
    for agent_id, (total, inbound, answered, missed, *_, talk, talked) in by_agent.items():
        per_agent.append({
            "agent_user_id": agent_id,
            "agent_name": names[agent_id],
            "total": total,
            "inbound": inbound,
            "outbound": total - inbound,
            "answered": answered,
            "missed": missed,
            "talk_seconds": talk,
            "average_talk_seconds": _ratio(talk, talked),
        })
    per_agent.sort(key=lambda a: (-a["total"], a["agent_name"], a["agent_user_id"] or 0))
    total, inbound, answered, missed, answered_inbound, in_service_level, ring_sum, ringed, talk_sum, talked = totals[:_CALL_FIGURES]

    hours = [[0, 0, 0] for _ in range(24)]
    first_day = start.astimezone(tz).date()
    last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
    days = {first_day + timedelta(days=i): [0, 0, 0] for i in range((last_day - first_day).days + 1)}

    def count(slot_start: datetime, n: int, ans: int, miss: int) -> None:
        local = slot_start.astimezone(tz)
        for slot in (hours[local.hour], days[local.date()]):
            slot[0] += n
            slot[1] += ans
            slot[2] += miss

    # UTC hours are local hours unless the zone's offset has quarter hours: then in quarters.
    seconds, offset = _zone_in(tz, start, end)
    if seconds == 3600:
        rows = _hours(conn.dialect.name, edges).all(conn, params)
        if offset is None:  # the offset changes in the period (daylight saving time)
            for epoch, n, ans, miss in rows:
                count(datetime.fromtimestamp(int(epoch), timezone.utc), int(n), int(ans), int(miss))
        else:
            # One offset all through: local hours and days by integer arithmetic.
            day_list = list(days.values())
            first = (int(start.timestamp()) + offset) // 86400
            for epoch, n, ans, miss in rows:
                local = int(epoch) + offset
                for slot in (hours[local // 3600 % 24], day_list[local // 86400 - first]):
                    slot[0] += int(n)
                    slot[1] += int(ans)
                    slot[2] += int(miss)
    else:
        query, bucket_start = _edge_buckets(conn.dialect.name, seconds)
        for slot, n, ans, miss in query.all(conn, params):
            count(bucket_start(slot), int(n), int(ans), int(miss))
        if rolled:
            for hour, *cumulative in _ROLLED_QUARTERS.all(conn, params):
                marks = [[int(v) for v in cumulative[i : i + 3]] for i in range(0, len(cumulative), 3)]
                before = [0, 0, 0]
                for quarter, upto in enumerate(marks):
                    count(hour + quarter * _QUARTER, *(u - b for u, b in zip(upto, before)))
                    before = upto

    average_talk = _ratio(talk_sum, talked)
    # Validated from plain values in one pass (services.models.call_stats says why).
    return CallStats.model_validate({
        "date_from": start,
        "date_to": end,
        "timezone": tz_name,
        "total": total,
        "inbound": inbound,
        "outbound": total - inbound,
        "answered": answered,
        "missed": missed,
        "answer_rate": _ratio(answered_inbound, inbound),
        "service_level": _ratio(in_service_level, inbound),
        "service_level_threshold_seconds": service_level_threshold_s,
        "average_speed_of_answer": _ratio(ring_sum, ringed),
        "average_talk_time": average_talk,
        # No hold or after-call-work data is captured yet: handle time is talk time.
        "average_handle_time": average_talk,
        "per_agent": per_agent,
        "per_hour": [{"hour": h, "total": t, "answered": a, "missed": m} for h, (t, a, m) in enumerate(hours)],
        "per_day": [{"day": d.isoformat(), "total": t, "answered": a, "missed": m} for d, (t, a, m) in days.items()],
    })
