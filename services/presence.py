"""Agent presence: what every agent is doing now, and how long they spent in each state.

One service keeps it true. The softphone reports what the phone does (registered, ringing,
answered, hung up, wrap-up done) and a heartbeat; the agent sets Available or Away (with a
reason) by hand; the periodic :func:`sweep` ends a wrap-up when the firm's wrap-up time
passed and marks an agent Offline when their tab's heartbeat stopped for 30 s; where the
server reads the PBX's registrations (services/pbx/registrations.py),
:func:`apply_registrations` marks an agent whose extension is not registered Offline, and the
tab's heartbeat does not bring them back until the PBX holds a registration again. Every change
closes the agent's current :class:`AgentStateChange` stretch and opens the next one, so the
time per state per day is a sum of stretches (:func:`time_in_states`). Each committed change
is announced on the ``agents`` live topic (:func:`announce`), never polled.
"""

from __future__ import annotations

import enum
import logging
from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session as SaSession
from sqlmodel import Session

from services import live
from services.authz import Permission, allowed, require, require_member
from services.db import dialect_insert
from services.errors import Conflict, Invalid
from services.models import (
    AgentState,
    AgentStateChange,
    AgentStatePublic,
    AgentStatus,
    AwayReason,
    BusinessHours,
    Principal,
    SipExtension,
    Tenant,
    User,
    utcnow,
)
from services.tenancy import owned_by, owned_join, tenant_select

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_S = 30
DEFAULT_WRAP_UP_S = 60
# The PBX's "not registered" outweighs the tab's heartbeat while the reading is this fresh
# (a reader that stopped, with its PBX gone, leaves the heartbeat in charge again).
PBX_READING_TRUSTED_S = 30

_A = AgentStatus

# The moves a state may make; anything else is refused (set by hand) or ignored (a late or
# repeated phone event).
TRANSITIONS: dict[AgentStatus, frozenset[AgentStatus]] = {
    _A.OFFLINE: frozenset({_A.AVAILABLE, _A.AWAY}),
    _A.AVAILABLE: frozenset({_A.RINGING, _A.ON_CALL, _A.AWAY, _A.OFFLINE}),
    _A.RINGING: frozenset({_A.ON_CALL, _A.AVAILABLE, _A.OFFLINE}),
    _A.ON_CALL: frozenset({_A.WRAP_UP, _A.OFFLINE}),
    _A.WRAP_UP: frozenset({_A.AVAILABLE, _A.AWAY, _A.ON_CALL, _A.OFFLINE}),
    _A.AWAY: frozenset({_A.AVAILABLE, _A.ON_CALL, _A.OFFLINE}),
}


class PhoneEvent(str, enum.Enum):
    REGISTERED = "registered"
    UNREGISTERED = "unregistered"
    RINGING = "ringing"
    ANSWERED = "answered"
    HUNG_UP = "hung_up"
    WRAP_UP_DONE = "wrap_up_done"


def announce(session: Session, tenant_id: int, topic: str, ref: int | str | None = None) -> None:
    """Publishes ``topic`` of the firm once ``session`` commits (nothing if it rolls back).

    Same contract as ``services.live.publish_on_commit`` of the live bus (branch push); this
    module switches to it when the bus is merged.
    """
    session.info.setdefault(_PENDING, {})[(tenant_id, topic, None if ref is None else str(ref))] = None


_PENDING = "watheeq_presence_pending"


@sa.event.listens_for(SaSession, "after_commit")
def _publish_pending(session: SaSession) -> None:
    for tenant_id, topic, ref in session.info.pop(_PENDING, None) or ():
        try:
            live.publish(tenant_id, topic, ref)
        except Exception:  # the commit stands; a lost change costs one stale screen
            log.exception("publishing %s/%s failed", topic, tenant_id)


@sa.event.listens_for(SaSession, "after_rollback")
def _drop_pending(session: SaSession) -> None:
    session.info.pop(_PENDING, None)


def check_transition(current: AgentStatus, target: AgentStatus) -> None:
    """:class:`Conflict` on ``status`` unless ``current`` may become ``target``."""
    if target != current and target not in TRANSITIONS[current]:
        raise Conflict(f"an agent who is {current.value} cannot become {target.value}", field="status")


def _wrap_up_seconds(session: Session, tenant_id: int) -> int:
    hours = session.exec(tenant_select(BusinessHours, tenant_id)).first()
    return hours.wrap_up_seconds if hours is not None else DEFAULT_WRAP_UP_S


def _current(session: Session, tenant_id: int, user_id: int, now: datetime) -> AgentState:
    """The agent's state row, locked for this transaction; created Offline when missing.

    Two writers may find it missing at once (the tab's report and the PBX reader): the row is
    inserted only if still absent, and whoever inserted it opens the first stretch."""
    query = tenant_select(AgentState, tenant_id).where(AgentState.user_id == user_id).with_for_update()
    state = session.exec(query).first()
    if state is None:
        created = session.execute(
            dialect_insert(session, AgentState.__table__)  # type: ignore[attr-defined]
            .values(tenant_id=tenant_id, user_id=user_id, status=AgentStatus.OFFLINE, since=now, other_party="", call_ref="")
            .on_conflict_do_nothing(index_elements=["user_id"])
            .returning(AgentState.__table__.c.id)  # type: ignore[attr-defined]
        ).scalar_one_or_none()
        if created is not None:
            session.add(AgentStateChange(tenant_id=tenant_id, user_id=user_id, status=AgentStatus.OFFLINE, started_at=now))
            session.flush()
        state = session.exec(query).one()
    return state


def _move(
    session: Session,
    state: AgentState,
    target: AgentStatus,
    now: datetime,
    *,
    reason: AwayReason | None = None,
    other_party: str = "",
    call_ref: str | None = None,
    wrap_up_s: int | None = None,
) -> bool:
    """Moves ``state`` to ``target`` (already checked); closes and opens the history stretch."""
    if target == state.status and reason == state.reason and other_party == state.other_party:
        return False
    if call_ref is not None:
        state.call_ref = call_ref[:255]
    elif target in (AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE):
        state.call_ref = ""
    at = max(now, state.since)
    if target != state.status or reason != state.reason:
        session.execute(
            sa.update(AgentStateChange)
            .where(
                owned_join(AgentStateChange, AgentStateChange.user_id == state.user_id, state.tenant_id),
                AgentStateChange.ended_at.is_(None),  # type: ignore[union-attr]
            )
            .values(ended_at=at)
        )
        session.add(AgentStateChange(tenant_id=state.tenant_id, user_id=state.user_id, status=target, reason=reason, started_at=at))
        state.since = at
    state.status = target
    state.reason = reason
    state.other_party = other_party[:64]
    state.wrap_up_until = at + timedelta(seconds=wrap_up_s or 0) if target == AgentStatus.WRAP_UP else None
    session.flush()
    announce(session, state.tenant_id, "agents", state.user_id)
    return True


def set_own_state(
    *, session: Session, tenant_id: int, actor: Principal, status: AgentStatus, reason: AwayReason | None = None, now: datetime | None = None
) -> AgentStatePublic:
    """The agent sets Available (also: done with wrap-up) or Away with a reason."""
    require_member(actor, tenant_id)
    if status not in (AgentStatus.AVAILABLE, AgentStatus.AWAY):
        raise Invalid("status", "an agent sets only AVAILABLE or AWAY; the phone reports the rest")
    if status == AgentStatus.AWAY and reason is None:
        raise Invalid("reason", "say why you are away: BREAK, MEETING or COURT")
    if status == AgentStatus.AVAILABLE:
        reason = None
    now = now or utcnow()
    state = _current(session, tenant_id, actor.user_id, now)
    check_transition(state.status, status)
    _move(session, state, status, now, reason=reason)
    return _public_one(session, tenant_id, actor.user_id)


def report_phone(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    event: PhoneEvent,
    other_party: str = "",
    call_ref: str = "",
    now: datetime | None = None,
    periodic: bool = False,
) -> AgentStatus:
    """What the agent's softphone did; a repeated or late event that does not fit is ignored.

    Every report is also a heartbeat. Registered brings an Offline agent back Available (an
    agent who was Away stays Away: the reason still holds), except a ``periodic`` one (the
    tab's heartbeat, not the phone registering now) while the PBX's last reading found the
    extension unregistered; hung up starts the firm's wrap-up after a conversation and returns
    to Available after a ring that was not answered.
    """
    require_member(actor, tenant_id)
    now = now or utcnow()
    state = _current(session, tenant_id, actor.user_id, now)
    state.heartbeat_at = now
    current = state.status
    target: AgentStatus | None
    reason = state.reason if current == AgentStatus.AWAY else None
    if event == PhoneEvent.REGISTERED:
        denied = periodic and _pbx_says_unregistered(state, now)
        target = AgentStatus.AVAILABLE if current == AgentStatus.OFFLINE and not denied else None
    elif event == PhoneEvent.UNREGISTERED:
        target = AgentStatus.OFFLINE
    elif event == PhoneEvent.RINGING:
        target = AgentStatus.RINGING
    elif event == PhoneEvent.ANSWERED:
        target = AgentStatus.ON_CALL
    elif event == PhoneEvent.HUNG_UP:
        target = AgentStatus.WRAP_UP if current == AgentStatus.ON_CALL else AgentStatus.AVAILABLE if current == AgentStatus.RINGING else None
    else:
        target = AgentStatus.AVAILABLE if current == AgentStatus.WRAP_UP else None
    # An event of another call than the one the agent is on or wrapping up (a late
    # duplicate, a second call turned away while talking) does not move the state.
    other_call = bool(call_ref and state.call_ref and call_ref != state.call_ref)
    busy = current in (AgentStatus.ON_CALL, AgentStatus.RINGING)
    if (busy and other_call and event in (PhoneEvent.HUNG_UP, PhoneEvent.RINGING)) or (
        current == AgentStatus.WRAP_UP and call_ref and call_ref == state.call_ref and event != PhoneEvent.WRAP_UP_DONE
    ):
        target = None
    if target is None or (target != current and target not in TRANSITIONS[current]):
        session.flush()
        return current
    keep_party = other_party if target in (AgentStatus.RINGING, AgentStatus.ON_CALL) else ""
    wrap = _wrap_up_seconds(session, tenant_id) if target == AgentStatus.WRAP_UP else None
    ref = call_ref if target in (AgentStatus.RINGING, AgentStatus.ON_CALL) and call_ref else None
    _move(session, state, target, now, reason=reason if target == current else None, other_party=keep_party, call_ref=ref, wrap_up_s=wrap)
    return state.status


def heartbeat(*, session: Session, tenant_id: int, actor: Principal, registered: bool, now: datetime | None = None) -> AgentStatus:
    """The tab is alive (every ~10 s); an unregistered phone is Offline."""
    event = PhoneEvent.REGISTERED if registered else PhoneEvent.UNREGISTERED
    return report_phone(session=session, tenant_id=tenant_id, actor=actor, event=event, now=now, periodic=True)


def _pbx_says_unregistered(state: AgentState, now: datetime) -> bool:
    read_at = state.pbx_read_at
    return state.pbx_registered is False and read_at is not None and now - read_at < timedelta(seconds=PBX_READING_TRUSTED_S)


def apply_registrations(*, session: Session, tenant_id: int, registered: Collection[str], read_at: datetime) -> int:
    """The PBX's reading at ``read_at``: which of the firm's extensions are registered.

    Kept on each agent with an extension; an agent whose extension is not registered becomes
    Offline (whatever the tab's heartbeat says), unless their state changed after the reading
    (the phone registered meanwhile). Returns how many agents moved.
    """
    agents = dict(
        session.execute(
            sa.select(SipExtension.user_id, SipExtension.extension)
            .join(User, owned_join(User, User.id == SipExtension.user_id, tenant_id))
            .where(owned_by(SipExtension, tenant_id), User.active.is_(True))  # type: ignore[attr-defined]
        ).all()
    )
    if not agents:
        return 0
    found = {uid: ext in registered for uid, ext in agents.items()}
    have = set(
        session.execute(
            sa.select(AgentState.user_id).where(owned_by(AgentState, tenant_id), AgentState.user_id.in_(list(agents)))  # type: ignore[attr-defined]
        ).scalars()
    )
    for uid in sorted(set(agents) - have):
        _current(session, tenant_id, uid, read_at)
    # Written only when the answer changed, or (not registered) when the reading that holds the
    # tab's heartbeat back is about to go stale: a quiet floor costs no writes.
    refresh_before = read_at - timedelta(seconds=PBX_READING_TRUSTED_S / 3)
    for flag in (True, False):
        users = [uid for uid, ok in found.items() if ok is flag]
        if not users:
            continue
        changed = sa.or_(AgentState.pbx_registered.is_(None), AgentState.pbx_registered.is_not(flag))  # type: ignore[union-attr]
        if not flag:
            changed = sa.or_(changed, AgentState.pbx_read_at.is_(None), AgentState.pbx_read_at < refresh_before)  # type: ignore[union-attr,operator]
        session.execute(
            sa.update(AgentState)
            .where(owned_by(AgentState, tenant_id), AgentState.user_id.in_(users), changed)  # type: ignore[attr-defined]
            .values(pbx_registered=flag, pbx_read_at=read_at)
            .execution_options(synchronize_session=False)
        )
    gone = [uid for uid, ok in found.items() if not ok]
    if not gone:
        return 0
    moved = 0
    due = session.exec(
        tenant_select(AgentState, tenant_id)
        .where(AgentState.user_id.in_(gone), AgentState.status != AgentStatus.OFFLINE, AgentState.since <= read_at)  # type: ignore[attr-defined,operator]
        .order_by(AgentState.user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for state in due:
        moved += _move(session, state, AgentStatus.OFFLINE, read_at)
    return moved


def sweep(*, session: Session, now: datetime | None = None) -> int:
    """All firms: wrap-ups past their time become Available, silent tabs Offline; returns moves."""
    now = now or utcnow()
    silent_since = now - timedelta(seconds=HEARTBEAT_TIMEOUT_S)
    moved = 0
    for tenant_id in session.execute(sa.select(Tenant.id).order_by(Tenant.id)).scalars():
        due = session.exec(
            tenant_select(AgentState, tenant_id)
            .where(
                sa.or_(
                    sa.and_(AgentState.status == AgentStatus.WRAP_UP, AgentState.wrap_up_until <= now),  # type: ignore[operator]
                    # No beat since the state began (or ever): a tab without a registered phone.
                    sa.and_(
                        AgentState.status != AgentStatus.OFFLINE,
                        sa.func.coalesce(AgentState.heartbeat_at, AgentState.since) < silent_since,
                    ),
                )
            )
            .with_for_update()
        ).all()
        for state in due:
            silent = (state.heartbeat_at or state.since) < silent_since
            if state.status != AgentStatus.OFFLINE and silent:
                last = state.heartbeat_at or state.since
                moved += _move(session, state, AgentStatus.OFFLINE, max(last + timedelta(seconds=HEARTBEAT_TIMEOUT_S), state.since))
            else:
                moved += _move(session, state, AgentStatus.AVAILABLE, state.wrap_up_until or now)
    return moved


def _rows(session: Session, tenant_id: int, user_id: int | None = None) -> list[AgentStatePublic]:
    query = (
        sa.select(User.id, User.full_name, SipExtension.extension, AgentState.status, AgentState.reason,
                  AgentState.other_party, AgentState.since, AgentState.wrap_up_until, User.created_at)
        .select_from(User)
        .outerjoin(AgentState, owned_join(AgentState, AgentState.user_id == User.id, tenant_id))
        .outerjoin(SipExtension, owned_join(SipExtension, SipExtension.user_id == User.id, tenant_id))
        .where(owned_by(User, tenant_id), User.active.is_(True))  # type: ignore[attr-defined]
        .order_by(User.full_name, User.id)
    )
    if user_id is not None:
        query = query.where(User.id == user_id)
    out = []
    for uid, name, ext, status, reason, party, since, until, created in session.execute(query):
        out.append(AgentStatePublic(
            user_id=uid, full_name=name, extension=ext, status=status or AgentStatus.OFFLINE, reason=reason,
            other_party=party or "", since=since or created, wrap_up_until=until,
        ))
    return out


def _public_one(session: Session, tenant_id: int, user_id: int) -> AgentStatePublic:
    return _rows(session, tenant_id, user_id)[0]


def list_states(*, session: Session, tenant_id: int, actor: Principal) -> list[AgentStatePublic]:
    """Every active user of the firm with their state now (supervisors; an agent sees own)."""
    require_member(actor, tenant_id)
    if not _can_see_all(actor):
        return _rows(session, tenant_id, actor.user_id)
    return _rows(session, tenant_id)


def _can_see_all(actor: Principal) -> bool:
    return allowed(actor, Permission.VIEW_ALL_CALLS)


def time_in_states(
    *, session: Session, tenant_id: int, actor: Principal, start: datetime, end: datetime, now: datetime | None = None
) -> dict[int, dict[AgentStatus, int]]:
    """Seconds per user per state between ``start`` and ``end`` (a day in the firm's zone)."""
    require(actor, Permission.VIEW_ALL_CALLS, tenant_id=tenant_id)
    now = now or utcnow()
    rows = session.exec(
        tenant_select(AgentStateChange, tenant_id).where(
            AgentStateChange.started_at < end,
            sa.or_(AgentStateChange.ended_at.is_(None), AgentStateChange.ended_at > start),  # type: ignore[union-attr,operator]
        )
    ).all()
    out: dict[int, dict[AgentStatus, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        stop = min(row.ended_at or now, end)
        begin = max(row.started_at, start)
        if stop > begin:
            out[row.user_id][row.status] += round((stop - begin).total_seconds())
    return {uid: dict(states) for uid, states in out.items()}
