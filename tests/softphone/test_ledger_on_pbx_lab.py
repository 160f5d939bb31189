"""The call ledger on the PBX lab, end to end: nobody is signed in, an outside caller rings
the firm and hangs up; the reconciler process (``python -m services.pbx.reconciler``, with
the lab's own CDR source) makes it a MISSED inbound call with the client's name, which the
REST API lists within 5 s of the hang-up. Then a call answered by a desk phone: one row,
its legs, and ring/talk seconds from the PBX's accounting.

Everything runs in the lab's network namespace with only ``lo`` (pbx_lab_support).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlmodel import Session

from services import accounts, db
from services.models import Client, PbxSettings, Role, Tenant, User
from services.pbx.lab import LabCdrSource
from tests import factories
from tests.softphone.pbx_lab_support import ROOT, lab_for_tests
from watheeq_ui.api.app import api

RING = 5
CALLER = "0551234567"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with lab_for_tests(tmp_path_factory.mktemp("ledger-lab"), ring_seconds=RING) as (lab, firm):
        db_url = f"sqlite:///{lab.dir.parent / 'watheeq.db'}"
        engine = db.create_db_engine(db_url)
        db.configure(engine)
        with Session(engine, expire_on_commit=False) as session:
            settings = session.execute(sa.select(PbxSettings).where(PbxSettings.sip_domain == firm.domain)).scalar_one()
            settings.cdr_source = "lab"
            tenant = session.get(Tenant, settings.tenant_id)
            client = session.execute(
                sa.select(Client).where(Client.tenant_id == tenant.id, Client.phone_e164 == "+966551234567")
            ).scalars().first() or factories.make_client(session, tenant, name="Lab Caller", phone=CALLER)
            owner = session.execute(sa.select(User).where(User.tenant_id == tenant.id, User.role == Role.OWNER)).scalars().first()
            token = accounts.issue_token(session=session, principal=factories.principal_of(owner))
            session.commit()
        server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        env = {**os.environ, "WATHEEQ_DATABASE_URL": db_url, "DEV_PBX_DIR": str(lab.dir), "WATHEEQ_PBX_TICK_SECONDS": "0.2"}
        reconciler = subprocess.Popen([sys.executable, "-m", "services.pbx.reconciler", "--worker-id", "lab-e2e"], cwd=ROOT, env=env)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        try:
            yield lab, firm, http, client, tenant.id
        finally:
            http.close()
            reconciler.terminate()
            reconciler.wait(10)
            server.should_exit = True
            thread.join(10)
            db.configure(None)
            engine.dispose()


def _wait_for(fetch, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_call_nobody_took_is_a_missed_call_with_the_client_within_5_s(stack):
    lab, firm, http, client, _ = stack
    assert "AoR:" not in lab.registered()
    # The feed is up (the reconciler claimed the firm and caught up) before the call.
    assert _wait_for(lambda: http.get("/api/v1/call-center/pbx-settings/feed").status_code == 200
                     and http.get("/api/v1/call-center/pbx-settings/feed").json()["connected"], 20)
    caller = lab.phone("caller", port=5094, number=CALLER)
    caller.dial(lab.did_uri(firm.did))
    closed = caller.wait_event("CALL_CLOSED", RING + 10)["at"]

    def missed():
        rows = http.get("/api/v1/call-center/calls", params={"status": "MISSED"}).json()["data"]
        return [r for r in rows if r["client_id"] == client.id]

    rows = _wait_for(missed, 10)
    seen = time.time()
    assert rows, "the missed call did not appear"
    assert seen - closed <= 5, f"visible {seen - closed:.1f} s after the hang-up"
    (row,) = rows
    assert (row["direction"], row["client_name"], row["agent_user_id"]) == ("INBOUND", client.name, None)
    assert RING - 1 <= row["ring_seconds"] <= RING + 1
    health = http.get("/api/v1/call-center/pbx-settings/feed").json()
    assert health["connected"] and health["records_today"] >= 1 and health["source_kind"] == "lab"


def test_an_answered_call_is_one_row_with_its_legs_and_the_labs_talk_time(stack):
    lab, firm, http, client, _ = stack
    a1 = lab.agent("a1", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5071)
    a2 = lab.agent("a2", user="1002", domain=firm.domain, password=firm.passwords["1002"], port=5073)
    caller = lab.phone("caller-2", port=5096, number=CALLER)
    caller.dial(lab.did_uri(firm.did))
    a1.wait_event("CALL_INCOMING", 10)
    a2.wait_event("CALL_INCOMING", 10)
    time.sleep(1)
    a2.accept()
    established = a2.wait_event("CALL_ESTABLISHED", 10)["at"]
    time.sleep(3)
    caller.hangup()
    closed = a2.wait_event("CALL_CLOSED", 10)["at"]

    def completed():
        rows = http.get("/api/v1/call-center/calls", params={"status": "COMPLETED"}).json()["data"]
        return [r for r in rows if r["client_id"] == client.id]

    rows = _wait_for(completed, 10)
    assert len(rows) == 1, rows
    (row,) = rows
    assert abs(row["talk_seconds"] - (closed - established)) <= 1
    assert 0 <= row["ring_seconds"] <= 2
    legs = http.get(f"/api/v1/call-center/calls/{row['id']}/legs").json()
    assert sorted((g["extension"], g["disposition"]) for g in legs) == [("1001", "CANCELED"), ("1002", "ANSWERED")]
    source = LabCdrSource(lab.dir, sip_domain=firm.domain)
    lab_talk = {r.extension: r.talk_seconds for r in source.catch_up(0) if r.answered_at is not None}
    answered = next(g for g in legs if g["disposition"] == "ANSWERED")
    assert abs(answered["talk_seconds"] - lab_talk["1002"]) <= 1


def test_a_ring_group_call_transferred_is_one_row_and_stats_give_talk_to_who_talked(stack):
    lab, firm, http, client, tenant_id = stack
    for phone in lab.phones:
        phone.stop()
    lab.phones = []

    def stats():
        body = http.get("/api/v1/call-center/stats").json()
        return body["answered"], {a["agent_user_id"]: a["talk_seconds"] for a in body["per_agent"]}

    answered_before, talk_before = stats()
    a1 = lab.agent("rg1", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5081)
    a2 = lab.agent("rg2", user="1002", domain=firm.domain, password=firm.passwords["1002"], port=5083)
    a3 = lab.agent("rg3", user="1003", domain=firm.domain, password=firm.passwords["1003"], port=5085)
    caller = lab.phone("caller-3", port=5098, number=CALLER)
    caller.dial(lab.did_uri(firm.did))
    for agent in (a1, a2, a3):
        agent.wait_event("CALL_INCOMING", 10)
    time.sleep(1)
    a2.accept()
    a2.wait_event("CALL_ESTABLISHED", 10)
    a3.wait_event("CALL_CLOSED", 10)
    seen3 = len(a3.events)
    time.sleep(2)
    a2.command("transfer", f"sip:1003@{firm.domain}")
    a3.wait_event("CALL_INCOMING", 10, since=seen3)
    a3.accept()
    time.sleep(3)
    caller.hangup()
    a3.wait_event("CALL_CLOSED", 10, since=seen3)

    source = LabCdrSource(lab.dir, sip_domain=firm.domain)
    linked = list(source.catch_up(0))[-1].linked_id
    lab_legs = [r for r in source.catch_up(0) if r.linked_id == linked]
    assert len(lab_legs) == 4

    def ledger_row():
        rows = http.get("/api/v1/call-center/calls", params={"status": "COMPLETED"}).json()["data"]
        legs = [http.get(f"/api/v1/call-center/calls/{r['id']}/legs").json() for r in rows]
        return [(r, g) for r, g in zip(rows, legs) if len(g) == 4]

    found = _wait_for(ledger_row, 10)
    assert len(found) == 1, found
    row, legs = found[0]
    assert sorted(g["unique_id"] for g in legs) == sorted(r.unique_id for r in lab_legs)
    transfer = next(g for g in legs if g["transferred_by"])
    assert (transfer["extension"], transfer["transferred_by"]) == ("1003", "1002")

    answered_after, talk_after = stats()
    assert answered_after - answered_before == 1  # one call, however many legs
    lab_talk = {r.extension: r.talk_seconds for r in lab_legs if r.answered_at is not None}
    users = {g["extension"]: g["agent_user_id"] for g in legs}
    for ext in ("1002", "1003"):
        gained = talk_after.get(users[ext], 0) - talk_before.get(users[ext], 0)
        assert abs(gained - lab_talk[ext]) <= 1, (ext, gained, lab_talk)
    assert talk_after.get(users["1001"], 0) == talk_before.get(users["1001"], 0)
