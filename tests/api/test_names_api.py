"""Names never carry bidirectional controls: "Invoice \u202efdp.exe" must not show as "Invoice exe.pdf".

Every writer of a name (clients, cases, users, firms, extensions' display names, WhatsApp
push names) strips them through one helper, so the API hands back only clean names.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import accounts, clients
from services.models import Role, WhatsappInbound
from services.names import BIDI_CONTROLS, clean_name
from services.whatsapp import store
from tests.api.conftest import Firm

SPOOF = "Invoice \u202efdp.exe"
EVERY_CONTROL = "A" + "".join(sorted(BIDI_CONTROLS)) + "\u0645\u062d\u0645\u062f B"
WORKER = "test-worker"


def _clean(text: str) -> bool:
    return not (set(text) & BIDI_CONTROLS)


def test_clean_name_drops_every_bidi_control_and_keeps_the_letters() -> None:
    assert clean_name(SPOOF) == "Invoice fdp.exe"
    assert clean_name(EVERY_CONTROL) == "A\u0645\u062d\u0645\u062f B"
    assert clean_name(None) == ""
    assert clean_name("\u202e \u2066") == ""


def test_a_client_name_is_stored_without_bidi_controls(http: httpx.Client, firm: Firm) -> None:
    r = http.post("/api/v1/clients", json={"name": SPOOF, "phone": "0551112222"}, headers=firm.auth())
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "Invoice fdp.exe"
    stored = http.get(f"/api/v1/clients/{r.json()['id']}", headers=firm.auth()).json()
    assert stored["name"] == "Invoice fdp.exe"


def test_a_name_of_only_controls_is_refused_as_empty(http: httpx.Client, firm: Firm) -> None:
    r = http.post("/api/v1/clients", json={"name": "\u202e\u202d\u2067"}, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "name"]


def test_an_extensions_display_name_is_stored_without_bidi_controls(http: httpx.Client, firm: Firm) -> None:
    body = {"user_id": firm.user_id(Role.AGENT), "extension": "201", "password": "Sip-Pass-123", "display_name": SPOOF}
    r = http.post("/api/v1/call-center/extension", json=body, headers=firm.auth())
    assert r.status_code == 200, r.text
    assert r.json()["display_name"] == "Invoice fdp.exe"
    listed = http.get("/api/v1/call-center/extensions", headers=firm.auth()).json()
    assert all(_clean(e["display_name"]) for e in listed)


def test_user_firm_and_case_names_are_stored_without_bidi_controls(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    with Session(engine) as session:
        user = accounts.create_user(
            session=session, tenant_id=firm.tenant_id, email="spoof@alpha.test", password="long-enough-pw",
            role=Role.AGENT, full_name=SPOOF,
        )
        tenant = accounts.create_tenant(session=session, name="\u202eLaw Firm")
        case = clients.create_case(session=session, tenant_id=firm.tenant_id, client_id=firm.client.id, title=SPOOF)
        session.commit()
    assert user.full_name == "Invoice fdp.exe"
    assert tenant.name == "Law Firm"
    assert case.title == "Invoice fdp.exe"
    cases = http.get(f"/api/v1/clients/{firm.client.id}/cases", headers=firm.auth()).json()
    assert "Invoice fdp.exe" in [c["title"] for c in cases]


def test_whatsapp_push_names_are_stored_without_bidi_controls(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    assert http.post("/api/v1/whatsapp/qr/connect", headers=firm.auth()).status_code == 200
    with Session(engine) as session:
        assert store.restore_active_sessions(session=session, worker_id=WORKER, lease_seconds=60)
        assert store.record_pairing(
            session=session, tenant_id=firm.tenant_id, worker_id=WORKER, device_jid="966500000000:1@s.whatsapp.net",
            phone_number="+966500000000", push_name=SPOOF,
        )
        session.commit()
    assert http.get("/api/v1/whatsapp/qr/status", headers=firm.auth()).json()["push_name"] == "Invoice fdp.exe"
    with Session(engine) as session:
        assert store.record_connected(session=session, tenant_id=firm.tenant_id, worker_id=WORKER, push_name="\u2067Alpha\u2069")
        store.store_inbound(
            session=session,
            tenant_id=firm.tenant_id,
            messages=[
                WhatsappInbound(
                    wa_message_id="m1", chat_jid="966501234567@s.whatsapp.net", remote_e164="+966501234567",
                    push_name=SPOOF, body="hello",
                )
            ],
        )
        session.commit()
    assert http.get("/api/v1/whatsapp/qr/status", headers=firm.auth()).json()["push_name"] == "Alpha"
    messages = http.get("/api/v1/whatsapp/qr/messages", headers=firm.auth()).json()["data"]
    assert [m["push_name"] for m in messages] == ["Invoice fdp.exe"]


@pytest.mark.parametrize("name", [SPOOF, EVERY_CONTROL])
def test_names_shown_in_the_call_history_are_clean(http: httpx.Client, firm: Firm, name: str) -> None:
    client = http.post("/api/v1/clients", json={"name": name, "phone": "0551112233"}, headers=firm.auth()).json()
    r = http.post(
        "/api/v1/call-center/calls", json={"direction": "INBOUND", "remote_number": "0551112233"}, headers=firm.auth()
    )
    assert r.status_code == 201
    assert r.json()["client_id"] == client["id"]
    assert _clean(r.json()["client_name"]) and r.json()["client_name"] == clean_name(name)
