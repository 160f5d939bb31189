"""The PBX lab honours presence: an agent who is Away is not rung by the ring group; back
Available, they are rung again (dev/kamailio/dnd.py keeps the running PBX's table current)."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from dev.kamailio import dnd
from services import db, presence
from services.models import AgentStatus, AwayReason, SipExtension, User
from services.tenancy import tenant_select
from tests.factories import principal_of
from tests.softphone.pbx_lab_support import lab_for_tests

RING = 4


@pytest.fixture(scope="module")
def lab_and_firm(tmp_path_factory):
    with lab_for_tests(tmp_path_factory.mktemp("pbx-lab-dnd"), ring_seconds=RING) as pair:
        yield pair


def _set(engine, extension: str, status: AgentStatus, reason: AwayReason | None = None) -> None:
    with Session(engine) as session:
        ext = session.exec(tenant_select(SipExtension, 1).where(SipExtension.extension == extension)).one()
        actor = principal_of(session.get(User, ext.user_id))
        presence.report_phone(session=session, tenant_id=1, actor=actor, event=presence.PhoneEvent.REGISTERED)
        presence.set_own_state(session=session, tenant_id=1, actor=actor, status=status, reason=reason)
        session.commit()


def test_an_away_agent_is_not_rung_and_is_rung_again_once_available(lab_and_firm):
    lab, firm = lab_and_firm
    engine = db.create_db_engine(lab.env["WATHEEQ_DATABASE_URL"])
    ctl = f"unix:{lab.dir / 'kamailio.ctl'}"
    try:
        a1 = lab.agent("agent-1001", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5071)
        a2 = lab.agent("agent-1002", user="1002", domain=firm.domain, password=firm.passwords["1002"], port=5073)
        _set(engine, "1001", AgentStatus.AWAY, AwayReason.COURT)
        with Session(engine) as session:
            assert dnd.sync(ctl, session) == {f"1001@{firm.domain}"}
        caller = lab.phone("caller", port=5094)
        caller.dial(lab.did_uri(firm.did))
        a2.wait_event("CALL_INCOMING")
        a2.hangup()  # turned away: the call ends unanswered
        caller.wait_event("CALL_CLOSED", RING + 5)
        assert not a1.has_event("CALL_INCOMING"), "the agent who is Away was rung"

        _set(engine, "1001", AgentStatus.AVAILABLE)
        with Session(engine) as session:
            assert dnd.sync(ctl, session) == set()
        n1, n2, nc = len(a1.events), len(a2.events), len(caller.events)
        caller.dial(lab.did_uri(firm.did))
        a1.wait_event("CALL_INCOMING", since=n1)
        a2.wait_event("CALL_INCOMING", since=n2)
        a1.accept()
        caller.wait_event("CALL_ESTABLISHED", since=nc)
        caller.hangup()
        a1.wait_event("CALL_CLOSED", since=n1)
    finally:
        engine.dispose()


def test_the_export_at_start_marks_away_agents() -> None:
    from dev.kamailio import credentials

    text = credentials.render({}, {"firm.pbx.localhost": 1}, dnd={"1001@firm.pbx.localhost"})
    assert '\t$sht(dnd=>1001@firm.pbx.localhost) = 1;' in text
    assert "dnd=>" not in credentials.render({}, {"firm.pbx.localhost": 1})
