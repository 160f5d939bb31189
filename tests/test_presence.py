"""services.presence: the agent state machine, its history, the heartbeat sweep, live announcements."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from services import live, presence
from services.errors import Conflict, Forbidden, Invalid
from services.models import AgentState, AgentStateChange, AgentStatus, AwayReason, BusinessHours
from services.presence import PhoneEvent
from services.tenancy import tenant_select
from tests.factories import make_extension, make_firm

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
S = AgentStatus


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize("current", list(AgentStatus))
@pytest.mark.parametrize("target", list(AgentStatus))
def test_every_transition_is_allowed_or_refused_by_the_table(current: AgentStatus, target: AgentStatus) -> None:
    allowed = target == current or target in presence.TRANSITIONS[current]
    if allowed:
        presence.check_transition(current, target)
    else:
        with pytest.raises(Conflict):
            presence.check_transition(current, target)


def test_the_table_refuses_what_makes_no_sense() -> None:
    # An agent is never rung while away or offline, and never ends a call without it starting.
    assert S.RINGING not in presence.TRANSITIONS[S.AWAY]
    assert S.RINGING not in presence.TRANSITIONS[S.OFFLINE]
    assert S.WRAP_UP not in presence.TRANSITIONS[S.AVAILABLE]
    assert S.AVAILABLE not in presence.TRANSITIONS[S.ON_CALL]


def test_a_call_walks_available_ringing_on_call_wrap_up_and_back(session: Session) -> None:
    firm = make_firm(session)
    agent = firm.agent
    session.add(BusinessHours(tenant_id=firm.tenant.id, wrap_up_seconds=45))
    session.flush()
    kw = dict(session=session, tenant_id=firm.tenant.id, actor=agent)
    assert presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=_at(0)) == S.AVAILABLE
    call = dict(other_party="0501234567", call_ref="c1")
    assert presence.report_phone(**kw, event=PhoneEvent.RINGING, **call, now=_at(10)) == S.RINGING
    assert presence.report_phone(**kw, event=PhoneEvent.ANSWERED, **call, now=_at(14)) == S.ON_CALL
    # A second call turned away while talking does not end this one.
    assert presence.report_phone(**kw, event=PhoneEvent.HUNG_UP, call_ref="c2", now=_at(20)) == S.ON_CALL
    [me] = presence.list_states(**kw)
    assert (me.status, me.other_party, me.since) == (S.ON_CALL, "0501234567", _at(14))
    assert presence.report_phone(**kw, event=PhoneEvent.HUNG_UP, call_ref="c1", now=_at(74)) == S.WRAP_UP
    [me] = presence.list_states(**kw)
    assert me.wrap_up_until == _at(74 + 45) and me.other_party == ""
    # A repeated or late event changes nothing.
    assert presence.report_phone(**kw, event=PhoneEvent.ANSWERED, call_ref="c1", now=_at(75)) == S.WRAP_UP
    assert presence.report_phone(**kw, event=PhoneEvent.WRAP_UP_DONE, now=_at(90)) == S.AVAILABLE
    seconds = presence.time_in_states(session=session, tenant_id=firm.tenant.id, actor=firm.manager, start=T0, end=_at(100), now=_at(100))
    assert seconds[agent.user_id] == {S.AVAILABLE: 10 + 10, S.RINGING: 4, S.ON_CALL: 60, S.WRAP_UP: 16}


def test_an_unanswered_ring_returns_to_available(session: Session) -> None:
    firm = make_firm(session)
    kw = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=_at(0))
    presence.report_phone(**kw, event=PhoneEvent.RINGING, now=_at(1))
    assert presence.report_phone(**kw, event=PhoneEvent.HUNG_UP, now=_at(20)) == S.AVAILABLE


def test_away_needs_a_reason_keeps_it_and_is_not_rung(session: Session) -> None:
    firm = make_firm(session)
    kw = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=_at(0))
    with pytest.raises(Invalid) as err:
        presence.set_own_state(**kw, status=S.AWAY, now=_at(1))
    assert err.value.field == "reason"
    with pytest.raises(Invalid):
        presence.set_own_state(**kw, status=S.ON_CALL, now=_at(1))
    me = presence.set_own_state(**kw, status=S.AWAY, reason=AwayReason.COURT, now=_at(2))
    assert (me.status, me.reason) == (S.AWAY, AwayReason.COURT)
    assert presence.report_phone(**kw, event=PhoneEvent.RINGING, now=_at(3)) == S.AWAY
    # Re-registering (a reload) keeps the reason.
    assert presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=_at(4)) == S.AWAY
    assert presence.set_own_state(**kw, status=S.AVAILABLE, now=_at(5)).reason is None


def test_setting_away_during_a_call_is_refused(session: Session) -> None:
    firm = make_firm(session)
    kw = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=_at(0))
    presence.report_phone(**kw, event=PhoneEvent.ANSWERED, now=_at(1))
    with pytest.raises(Conflict):
        presence.set_own_state(**kw, status=S.AWAY, reason=AwayReason.BREAK, now=_at(2))


def test_the_sweep_ends_wrap_up_on_time_and_marks_silent_tabs_offline(session: Session) -> None:
    firm = make_firm(session)
    a = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    m = dict(session=session, tenant_id=firm.tenant.id, actor=firm.manager)
    presence.report_phone(**a, event=PhoneEvent.REGISTERED, now=_at(0))
    presence.report_phone(**a, event=PhoneEvent.ANSWERED, now=_at(1))
    presence.report_phone(**a, event=PhoneEvent.HUNG_UP, now=_at(11))  # wrap-up until 71 (default 60 s)
    presence.report_phone(**m, event=PhoneEvent.REGISTERED, now=_at(0))
    presence.heartbeat(**a, registered=True, now=_at(60))
    presence.heartbeat(**m, registered=True, now=_at(40))
    assert presence.sweep(session=session, now=_at(65)) == 0
    assert presence.sweep(session=session, now=_at(72)) == 2  # agent's wrap-up over; manager silent since 40
    by_user = {s.user_id: s for s in presence.list_states(**m)}
    assert (by_user[firm.agent.user_id].status, by_user[firm.agent.user_id].since) == (S.AVAILABLE, _at(71))
    assert (by_user[firm.manager.user_id].status, by_user[firm.manager.user_id].since) == (S.OFFLINE, _at(70))
    assert presence.sweep(session=session, now=_at(89)) == 0
    assert presence.sweep(session=session, now=_at(91)) == 1  # the agent's last heartbeat was at 60
    assert {s.user_id: s.status for s in presence.list_states(**m)}[firm.agent.user_id] == S.OFFLINE


def test_agents_see_only_themselves_and_firms_never_mix(session: Session) -> None:
    firm, other = make_firm(session), make_firm(session)
    make_extension(session, firm.users[firm.agent.role], extension="2001")
    presence.report_phone(session=session, tenant_id=other.tenant.id, actor=other.agent, event=PhoneEvent.REGISTERED)
    mine = presence.list_states(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    assert [(s.user_id, s.extension) for s in mine] == [(firm.agent.user_id, "2001")]
    everyone = presence.list_states(session=session, tenant_id=firm.tenant.id, actor=firm.manager)
    assert {s.user_id for s in everyone} == {firm.principal(r).user_id for r in firm.users}
    assert all(s.status == S.OFFLINE for s in everyone)
    with pytest.raises(Forbidden):
        presence.report_phone(session=session, tenant_id=firm.tenant.id, actor=other.agent, event=PhoneEvent.REGISTERED)
    with pytest.raises(Forbidden):
        presence.time_in_states(session=session, tenant_id=firm.tenant.id, actor=firm.agent, start=T0, end=_at(1))


def test_a_change_is_announced_after_commit_only(session: Session) -> None:
    firm = make_firm(session)
    seen: list[live.Change] = []
    stop = live.subscribe(seen.append)
    try:
        presence.report_phone(session=session, tenant_id=firm.tenant.id, actor=firm.agent, event=PhoneEvent.REGISTERED)
        assert seen == []
        session.commit()
        assert [(c.tenant_id, c.topic, c.ref) for c in seen] == [(firm.tenant.id, "agents", str(firm.agent.user_id))]
        presence.set_own_state(session=session, tenant_id=firm.tenant.id, actor=firm.agent, status=S.AWAY, reason=AwayReason.BREAK)
        session.rollback()
        session.commit()  # a later commit does not send what was rolled back
        assert len(seen) == 1
    finally:
        stop()


def test_a_hand_set_state_without_a_beating_phone_lasts_30_s(session: Session) -> None:
    firm = make_firm(session)
    kw = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    presence.set_own_state(**kw, status=S.AWAY, reason=AwayReason.MEETING, now=_at(0))
    assert presence.sweep(session=session, now=_at(29)) == 0
    assert presence.sweep(session=session, now=_at(31)) == 1
    [me] = presence.list_states(**kw)
    assert (me.status, me.since) == (S.OFFLINE, _at(30))


def test_an_agent_whose_extension_the_pbx_does_not_hold_is_offline_whatever_the_tab_says(session: Session) -> None:
    firm, other = make_firm(session), make_firm(session)
    make_extension(session, firm.users[firm.agent.role], extension="2001")
    make_extension(session, firm.users[firm.manager.role], extension="2002")
    make_extension(session, other.users[other.agent.role], extension="2001")
    a = dict(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    m = dict(session=session, tenant_id=firm.tenant.id, actor=firm.manager)
    o = dict(session=session, tenant_id=other.tenant.id, actor=other.agent)
    for kw in (a, m, o):
        presence.report_phone(**kw, event=PhoneEvent.REGISTERED, now=_at(0))
    presence.set_own_state(**m, status=S.AWAY, reason=AwayReason.BREAK, now=_at(1))

    # The PBX holds 2001 of this firm only: the manager's closed laptop goes Offline, the
    # agent stays, and the other firm's 2001 is not this firm's business.
    assert presence.apply_registrations(session=session, tenant_id=firm.tenant.id, registered={"2001"}, read_at=_at(5)) == 1
    states = {s.user_id: s for s in presence.list_states(**m)}
    assert (states[firm.manager.user_id].status, states[firm.manager.user_id].since) == (S.OFFLINE, _at(5))
    assert states[firm.agent.user_id].status == S.AVAILABLE
    assert presence.list_states(**o)[0].status == S.AVAILABLE

    # The tab keeps beating "registered": the PBX's fresh reading wins, the agent stays Offline.
    assert presence.heartbeat(**m, registered=True, now=_at(8)) == S.OFFLINE
    assert presence.apply_registrations(session=session, tenant_id=firm.tenant.id, registered={"2001"}, read_at=_at(10)) == 0
    # An unchanged answer writes nothing (the agent's row still carries the first reading).
    row = session.exec(tenant_select(AgentState, firm.tenant.id).where(AgentState.user_id == firm.agent.user_id)).one()
    session.refresh(row)
    assert (row.pbx_registered, row.pbx_read_at) == (True, _at(5))
    assert presence.heartbeat(**m, registered=True, now=_at(18)) == S.OFFLINE
    # The phone registering now (not a heartbeat) is believed at once.
    assert presence.report_phone(**m, event=PhoneEvent.REGISTERED, now=_at(19)) == S.AVAILABLE
    # A reading taken before that registration does not undo it.
    assert presence.apply_registrations(session=session, tenant_id=firm.tenant.id, registered={"2001"}, read_at=_at(18.5)) == 0
    assert {s.user_id: s.status for s in presence.list_states(**m)}[firm.manager.user_id] == S.AVAILABLE

    # Registered again at the PBX: the heartbeat brings an Offline agent back.
    presence.report_phone(**m, event=PhoneEvent.UNREGISTERED, now=_at(20))
    assert presence.apply_registrations(session=session, tenant_id=firm.tenant.id, registered={"2001", "2002"}, read_at=_at(25)) == 0
    assert presence.heartbeat(**m, registered=True, now=_at(28)) == S.AVAILABLE

    # A reading that is no longer fresh (the reader stopped with its PBX) no longer holds the tab back.
    presence.apply_registrations(session=session, tenant_id=firm.tenant.id, registered=set(), read_at=_at(30))
    assert presence.heartbeat(**a, registered=True, now=_at(40)) == S.OFFLINE
    assert presence.heartbeat(**a, registered=True, now=_at(30 + presence.PBX_READING_TRUSTED_S + 1)) == S.AVAILABLE


def test_the_reader_asks_the_pbx_once_per_round_for_the_firms_on_it(engine) -> None:
    from services import db
    from services.call_center import extensions
    from services.models import PbxSettingsIn
    from services.pbx import registrations

    with db.session_scope() as s:
        lab, ucm = make_firm(s), make_firm(s)
        make_extension(s, lab.users[lab.agent.role], extension="1001")
        make_extension(s, ucm.users[ucm.agent.role], extension="1001")
    with db.session_scope() as s:
        # One firm on the lab (this machine), one on its own UCM: the lab's reader serves the first.
        for firm, host in ((lab, "127.0.0.1"), (ucm, "ucm.example.com")):
            extensions.update_pbx_settings(
                session=s, tenant_id=firm.tenant.id, actor=firm.owner, data=PbxSettingsIn(host=host, sip_domain=f"f{firm.tenant.id}.pbx.localhost"),
            )
        for firm in (lab, ucm):
            presence.report_phone(session=s, tenant_id=firm.tenant.id, actor=firm.agent, event=PhoneEvent.REGISTERED)

    class Lab(registrations.KamailioRegistrations):
        calls = 0

        def dump(self) -> str:
            Lab.calls += 1
            return ""  # nobody registered

    result = registrations.read_once(Lab("unix:/nowhere"))
    assert (result.firms, result.moved, Lab.calls) == (1, 1, 1)
    with db.session_scope() as s:
        assert presence.list_states(session=s, tenant_id=lab.tenant.id, actor=lab.agent)[0].status == S.OFFLINE
        assert presence.list_states(session=s, tenant_id=ucm.tenant.id, actor=ucm.agent)[0].status == S.AVAILABLE

    class Down(registrations.KamailioRegistrations):
        def dump(self) -> str:
            raise registrations.RegistrationSourceError("kamcmd: connection refused")

    with pytest.raises(registrations.RegistrationSourceError):
        registrations.read_once(Down("unix:/nowhere"))


UL_DUMP = """{
	Domains: {
		Domain: {
			Domain: location
			AoRs: {
				Info: {
					AoR: 1001@al-waha-law-firm.pbx.localhost
					Contacts: {
						Contact: {
							Address: sip:1001@127.0.0.1:5071
							Expires: 57
						}
					}
				}
				Info: {
					AoR: 1002@Al-Waha-Law-Firm.pbx.localhost
					Contacts: {
						Contact: {
							Address: sip:1002@127.0.0.1:5072
							Expires: expired
						}
					}
				}
				Info: {
					AoR: 1003@other.pbx.localhost
					Contacts: {
						Contact: {
							Address: sip:1003@127.0.0.1:5073
							Expires: permanent
						}
					}
				}
			}
		}
	}
}"""


def test_kamailios_location_table_is_read_as_aors_with_a_live_contact() -> None:
    from services.pbx import registrations

    assert registrations.parse_ul_dump(UL_DUMP) == {("1001", "al-waha-law-firm.pbx.localhost"), ("1003", "other.pbx.localhost")}
    assert registrations.parse_ul_dump("") == set()


def test_two_first_reports_of_one_agent_at_once_make_one_state_row(engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        firm = make_firm(s)
        s.commit()
    agent, tenant_id = firm.agent, firm.tenant.id
    first_inside, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def tab_registering() -> None:
        with Session(engine) as s:
            presence.report_phone(session=s, tenant_id=tenant_id, actor=agent, event=PhoneEvent.REGISTERED)
            first_inside.set()  # the agent's row is written, not yet committed
            release.wait(10)
            s.commit()

    def reader_or_second_tab() -> None:
        first_inside.wait(10)
        try:
            with Session(engine) as s:
                presence.heartbeat(session=s, tenant_id=tenant_id, actor=agent, registered=True)
                s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=tab_registering), threading.Thread(target=reader_or_second_tab)]
    for t in threads:
        t.start()
    first_inside.wait(10)
    threading.Event().wait(0.5)  # the second writer reaches its insert and waits for the first
    release.set()
    for t in threads:
        t.join(30)
    assert errors == []
    with Session(engine) as s:
        rows = s.exec(select(AgentState).where(AgentState.user_id == agent.user_id)).all()
        stretches = s.exec(select(AgentStateChange).where(AgentStateChange.user_id == agent.user_id)).all()
    assert [r.status for r in rows] == [S.AVAILABLE]
    assert sorted(c.status.value for c in stretches) == ["AVAILABLE", "OFFLINE"]
