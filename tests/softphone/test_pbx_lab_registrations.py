"""The PBX lab's registrations read into presence: with the lab's control socket set, the
backend's one reader (watheeq_ui/background.py, services/pbx/registrations.py) asks Kamailio
which extensions are registered; an agent whose phone unregisters goes Offline within the
read interval although the tab keeps beating "registered", and comes back once the phone
registers again. The phone is tests/softphone/sip_udp.py over UDP inside the lab's
loopback-only namespace; the tab is played by the presence service's own calls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session

from services import db, presence
from services.models import AgentState, AgentStatus, SipExtension, User
from services.tenancy import tenant_select
from tests.factories import principal_of
from tests.softphone.pbx_lab_support import lab_for_tests
from watheeq_ui import background

pytestmark = pytest.mark.sip

READ_S = 1.0  # the reader's interval in this test (the default is services.pbx.registrations.READ_SECONDS)
SLACK_S = 1.5  # a round's own time: kamcmd, the transactions, this test's polling


@pytest.fixture
def lab_and_firm(tmp_path):
    with lab_for_tests(tmp_path / "lab-registrations") as pair:
        yield pair


def _sip(lab, steps: list[dict], scenario: Path) -> list:
    scenario.write_text(json.dumps(steps))
    done = subprocess.run(lab.cmd([sys.executable, str(Path(__file__).with_name("sip_udp.py")), str(scenario)]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _state(engine, user_id: int) -> AgentState:
    with Session(engine) as session:
        return session.exec(tenant_select(AgentState, 1).where(AgentState.user_id == user_id)).one()


async def _until_status(engine, user_id: int, status: AgentStatus, timeout: float) -> float:
    start = time.monotonic()
    while (seen := _state(engine, user_id).status) != status:
        assert time.monotonic() - start < timeout, f"still {seen.value} after {timeout} s (waiting for {status.value})"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_an_agent_whose_phone_unregisters_is_offline_within_the_read_interval_though_the_tab_beats(
    lab_and_firm, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab, firm = lab_and_firm
    engine = db.create_db_engine(lab.env["WATHEEQ_DATABASE_URL"])
    db.configure(engine)
    with Session(engine) as session:
        ext = session.exec(tenant_select(SipExtension, 1).where(SipExtension.extension == "1002")).one()
        agent = principal_of(session.get(User, ext.user_id))
    phone = {"port": 5081, "user": "1002", "domain": firm.domain, "password": firm.passwords["1002"]}

    def tab(event_or_beat: str) -> AgentStatus:
        """What the agent's tab reports: the phone registering now, or its 10 s heartbeat."""
        with db.session_scope() as session:
            if event_or_beat == "registered":
                return presence.report_phone(session=session, tenant_id=1, actor=agent, event=presence.PhoneEvent.REGISTERED)
            return presence.heartbeat(session=session, tenant_id=1, actor=agent, registered=True)

    monkeypatch.setenv(background.DEV_PBX_CTL_ENV, f"unix:{lab.dir / 'kamailio.ctl'}")
    reader = asyncio.create_task(background.follow_pbx_registrations(interval=READ_S))
    figures: dict[str, float] = {}
    try:
        assert await asyncio.to_thread(_sip, lab, [{"op": "register", **phone}], tmp_path / "reg.json") == [200]
        assert "AoR: 1002@" in lab.registered()
        assert tab("registered") == AgentStatus.AVAILABLE
        # Rounds pass with the phone registered: the agent stays Available, the PBX said so.
        await asyncio.sleep(READ_S * 2 + SLACK_S)
        held = _state(engine, agent.user_id)
        assert (held.status, held.pbx_registered) == (AgentStatus.AVAILABLE, True)

        # The phone unregisters (Expires: 0); the tab keeps beating as a sleeping laptop's would.
        assert await asyncio.to_thread(_sip, lab, [{"op": "register", **phone, "expires": 0}], tmp_path / "unreg.json") == [200]
        assert "AoR: 1002@" not in lab.registered()
        figures["unregistered_to_offline"] = await _until_status(engine, agent.user_id, AgentStatus.OFFLINE, READ_S + SLACK_S)
        for _ in range(3):
            assert tab("beat") == AgentStatus.OFFLINE
            await asyncio.sleep(READ_S / 2)
        assert _state(engine, agent.user_id).status == AgentStatus.OFFLINE

        # Registered again: the next round sees it and the tab's heartbeat brings the agent back.
        assert await asyncio.to_thread(_sip, lab, [{"op": "register", **phone}], tmp_path / "again.json") == [200]
        start = time.monotonic()
        while not _state(engine, agent.user_id).pbx_registered:
            assert time.monotonic() - start < READ_S + SLACK_S, "the reader did not see the registration"
            await asyncio.sleep(0.05)
        assert tab("beat") == AgentStatus.AVAILABLE
    finally:
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        db.configure(None)
        engine.dispose()
        print("registration -> presence (s):", {k: round(v, 3) for k, v in figures.items()})
    assert figures["unregistered_to_offline"] <= READ_S + SLACK_S
