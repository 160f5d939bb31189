"""The ledger over HTTP: a PBX call nobody saw in the call list, its legs, the feed's health."""

from __future__ import annotations

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.models import PbxSettings, Role
from services.pbx import feed
from services.pbx.ledger import ingest
from services.pbx.records import LegDisposition
from tests import factories
from tests.api.conftest import Firm
from tests.ledger_support import leg

CALLS = "/api/v1/call-center/calls"


def _ingest(engine: Engine, firm: Firm, records) -> list[int]:
    with Session(engine, expire_on_commit=False) as session:
        result = ingest(session=session, tenant_id=firm.tenant_id, records=records)
        session.commit()
    return result.call_ids


def test_a_missed_pbx_call_is_in_the_list_with_its_client_and_its_legs(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    with Session(engine, expire_on_commit=False) as session:
        amal = factories.make_user(session, firm.tenant, Role.AGENT, full_name="Amal")
        factories.make_extension(session, amal, extension="2001")
        session.commit()
    [call_id] = _ingest(engine, firm, [
        leg("M1", position=1, unique_id="m1-a", extension="2001", remote="0501234567", end=18, disposition=LegDisposition.CANCELED),
        leg("M1", position=2, unique_id="m1-b", extension="2002", remote="0501234567", start=1, end=18, disposition=LegDisposition.CANCELED),
    ])
    page = http.get(CALLS, params={"status": "MISSED"}, headers=firm.auth(Role.MANAGER)).json()
    assert [(c["id"], c["client_name"], c["direction"]) for c in page["data"]] == [(call_id, firm.client.name, "INBOUND")]
    legs = http.get(f"{CALLS}/{call_id}/legs", headers=firm.auth(Role.MANAGER))
    assert legs.status_code == 200, legs.text
    assert [(g["extension"], g["agent_name"], g["ring_seconds"], g["talk_seconds"], g["disposition"], g["kind"]) for g in legs.json()] == [
        ("2001", "Amal", 18, 0, "CANCELED", "ring"), ("2002", None, 17, 0, "CANCELED", "ring"),
    ]


def test_legs_of_another_firms_call_or_another_agents_are_404(http: httpx.Client, engine: Engine, firm: Firm, rival: Firm) -> None:
    [call_id] = _ingest(engine, firm, [leg("A1", position=1, unique_id="a1", answer=2, end=30)])
    assert http.get(f"{CALLS}/{call_id}/legs", headers=rival.auth(Role.OWNER)).status_code == 404
    # No agent answered it with this firm's extensions: it is no agent's own call.
    assert http.get(f"{CALLS}/{call_id}/legs", headers=firm.auth(Role.AGENT)).status_code == 404
    assert http.get(f"{CALLS}/999999/legs", headers=firm.auth(Role.OWNER)).status_code == 404


def test_the_feed_health_is_for_admins_and_404_before_it_starts(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    url = "/api/v1/call-center/pbx-settings/feed"
    assert http.get(url, headers=firm.auth(Role.OWNER)).status_code == 404
    with Session(engine, expire_on_commit=False) as session:
        session.add(PbxSettings(tenant_id=firm.tenant_id, host="127.0.0.1", cdr_source="lab"))
        session.commit()
        [lease] = feed.claim_feeds(session=session, worker_id="w", lease_seconds=30)
        feed.commit_batch(session=session, tenant_id=firm.tenant_id, worker_id="w", epoch=lease.epoch,
                          records=[leg("H1", position=1, unique_id="h1", end=5)], source_kind="lab", live=True)
        feed.record_state(session=session, tenant_id=firm.tenant_id, worker_id="w", epoch=lease.epoch, connected=True)
        session.commit()
    health = http.get(url, headers=firm.auth(Role.ADMIN))
    assert health.status_code == 200
    body = health.json()
    assert (body["connected"], body["records_today"], body["gaps_filled"], body["source_kind"]) == (True, 1, 0, "lab")
    assert http.get(url, headers=firm.auth(Role.AGENT)).status_code == 403
