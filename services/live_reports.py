"""Live-operations reports (OWNER/ADMIN/MANAGER), by day in the firm's time zone.

- Per agent per day: seconds in each state (from the presence history's stretches, cut at
  the day's edges), calls handled (the agent's answered calls that started that day),
  callbacks made (items whose first callback that day was the agent's call) and the
  outcomes of the items the agent closed that day.
- Callback time per day of the first miss: from the first miss to the first callback, in
  wall-clock seconds; p50 and p90 by linear interpolation between the nearest ranks.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from services import presence
from services.authz import Permission, require
from services.business_hours import firm_zone
from services.errors import Invalid
from services.models import AgentStatus, Call, Callback, Principal, User, utcnow
from services.tenancy import owned_by

MAX_DAYS = 31


class AgentDayRow(SQLModel):
    day: str
    user_id: int
    agent_name: str
    seconds: dict[str, int]
    calls_handled: int
    callbacks_made: int
    outcomes: dict[str, int]


class CallbackTimeRow(SQLModel):
    day: str
    missed_items: int
    called_back: int
    p50_seconds: float | None
    p90_seconds: float | None


def percentile(values: list[float], p: float) -> float | None:
    """The ``p`` (0–1) percentile of ``values`` by linear interpolation; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = p * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _days(date_from: date, date_to: date) -> list[date]:
    if date_to < date_from:
        raise Invalid("date_to", "the last day is on or after the first")
    count = (date_to - date_from).days + 1
    if count > MAX_DAYS:
        raise Invalid("date_to", f"at most {MAX_DAYS} days")
    return [date_from + timedelta(days=i) for i in range(count)]


def _bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return datetime.combine(day, time(0), zone), datetime.combine(day + timedelta(days=1), time(0), zone)


def agent_report(
    *, session: Session, tenant_id: int, actor: Principal, date_from: date, date_to: date, now: datetime | None = None
) -> list[AgentDayRow]:
    """One row per agent and day with any time, call or callback; days in the firm's zone."""
    require(actor, Permission.VIEW_ALL_CALLS, tenant_id=tenant_id)
    days = _days(date_from, date_to)
    zone = firm_zone(session, tenant_id)
    now = now or utcnow()
    start, end = _bounds(days[0], zone)[0], _bounds(days[-1], zone)[1]
    names = dict(session.execute(sa.select(User.id, User.full_name).where(owned_by(User, tenant_id))).all())

    def day_of(at: datetime) -> str:
        return at.astimezone(zone).date().isoformat()

    seconds: dict[tuple[str, int], dict[str, int]] = defaultdict(dict)
    for day in days:
        lo, hi = _bounds(day, zone)
        for user_id, by_state in presence.time_in_states(session=session, tenant_id=tenant_id, actor=actor, start=lo, end=hi, now=now).items():
            seconds[(day.isoformat(), user_id)] = {s.value: v for s, v in by_state.items()}
    handled: dict[tuple[str, int], int] = defaultdict(int)
    for agent_id, started in session.execute(
        sa.select(Call.agent_user_id, Call.started_at).where(
            owned_by(Call, tenant_id), Call.started_at >= start, Call.started_at < end,
            Call.answered_at.is_not(None), Call.agent_user_id.is_not(None),  # type: ignore[union-attr]
        )
    ):
        handled[(day_of(started), agent_id)] += 1
    made: dict[tuple[str, int], int] = defaultdict(int)
    outcomes: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    items = session.execute(
        sa.select(Callback.claimed_by_user_id, Callback.first_callback_at, Callback.closed_by_user_id, Callback.closed_at, Callback.outcome).where(
            owned_by(Callback, tenant_id),
            sa.or_(
                sa.and_(Callback.first_callback_at >= start, Callback.first_callback_at < end),  # type: ignore[operator]
                sa.and_(Callback.closed_at >= start, Callback.closed_at < end),  # type: ignore[operator]
            ),
        )
    ).all()
    for claimer, called_at, closer, closed_at, outcome in items:
        if called_at is not None and claimer is not None and start <= called_at < end:
            made[(day_of(called_at), claimer)] += 1
        if closed_at is not None and closer is not None and outcome is not None and start <= closed_at < end:
            outcomes[(day_of(closed_at), closer)][outcome.value] += 1
    keys = sorted(set(seconds) | set(handled) | set(made) | set(outcomes), key=lambda k: (k[0], names.get(k[1], ""), k[1]))
    return [
        AgentDayRow(
            day=day, user_id=user_id, agent_name=names.get(user_id, ""),
            seconds={s.value: seconds.get((day, user_id), {}).get(s.value, 0) for s in AgentStatus},
            calls_handled=handled.get((day, user_id), 0), callbacks_made=made.get((day, user_id), 0),
            outcomes=dict(outcomes.get((day, user_id), {})),
        )
        for day, user_id in keys
        if user_id in names
    ]


def callback_times(*, session: Session, tenant_id: int, actor: Principal, date_from: date, date_to: date) -> list[CallbackTimeRow]:
    """Per day of the first miss: items, items called back, p50/p90 of miss → first callback."""
    require(actor, Permission.VIEW_ALL_CALLS, tenant_id=tenant_id)
    days = _days(date_from, date_to)
    zone = firm_zone(session, tenant_id)
    start, end = _bounds(days[0], zone)[0], _bounds(days[-1], zone)[1]
    waits: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for missed_at, called_at in session.execute(
        sa.select(Callback.first_missed_at, Callback.first_callback_at).where(
            owned_by(Callback, tenant_id), Callback.first_missed_at >= start, Callback.first_missed_at < end
        )
    ):
        day = missed_at.astimezone(zone).date().isoformat()
        counts[day] += 1
        if called_at is not None:
            waits[day].append(max(0.0, (called_at - missed_at).total_seconds()))
    return [
        CallbackTimeRow(
            day=d.isoformat(), missed_items=counts.get(d.isoformat(), 0), called_back=len(waits.get(d.isoformat(), [])),
            p50_seconds=percentile(waits.get(d.isoformat(), []), 0.5), p90_seconds=percentile(waits.get(d.isoformat(), []), 0.9),
        )
        for d in days
    ]
