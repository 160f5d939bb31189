"""The firm's WhatsApp line over HTTP: linking by QR, status, sending and the message log.

The sidecar's part (claiming the session, writing the QR, reporting the connection) is
played here by the same store functions the sidecar calls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services.models import Role
from services.whatsapp import store
from tests import factories
from tests.api.conftest import ROLES, Firm

QR = "/api/v1/whatsapp/qr"
WORKER = "test-worker"
QR_PAYLOAD = "2@qr-payload-to-scan,key,key,key"


def _sidecar_claims(engine: Engine) -> None:
    with Session(engine) as session:
        assert store.restore_active_sessions(session=session, worker_id=WORKER, lease_seconds=60)
        session.commit()


def _sidecar_shows_qr(engine: Engine, firm: Firm) -> None:
    _sidecar_claims(engine)
    with Session(engine) as session:
        assert store.record_qr(session=session, tenant_id=firm.tenant_id, worker_id=WORKER, payload=QR_PAYLOAD)
        session.commit()


def _sidecar_connects(engine: Engine, firm: Firm) -> None:
    _sidecar_claims(engine)
    with Session(engine) as session:
        assert store.record_connected(session=session, tenant_id=firm.tenant_id, worker_id=WORKER, push_name="Alpha Law")
        session.commit()


@pytest.fixture
def connected(http: httpx.Client, engine: Engine, firm: Firm) -> Firm:
    assert http.post(f"{QR}/connect", headers=firm.auth()).status_code == 200
    _sidecar_connects(engine, firm)
    return firm


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_and_admin_link_the_line_and_see_the_qr(
    http: httpx.Client, engine: Engine, firm: Firm, role: Role
) -> None:
    r = http.post(f"{QR}/connect", headers=firm.auth(role))
    assert r.status_code == 200, r.text
    assert r.json()["desired_state"] == "CONNECTED"
    assert r.json()["status"] == "CONNECTING"
    _sidecar_shows_qr(engine, firm)
    status = http.get(f"{QR}/status", headers=firm.auth(role)).json()
    assert status["status"] == "QR_PENDING"
    assert status["qr_payload"] == QR_PAYLOAD


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_others_may_not_link_or_unlink_nor_see_the_qr(
    http: httpx.Client, engine: Engine, firm: Firm, role: Role
) -> None:
    assert http.post(f"{QR}/connect", headers=firm.auth(role)).status_code == 403
    assert http.get(f"{QR}/status", headers=firm.auth()).json()["desired_state"] == "DISCONNECTED"
    http.post(f"{QR}/connect", headers=firm.auth())
    _sidecar_shows_qr(engine, firm)
    status = http.get(f"{QR}/status", headers=firm.auth(role))
    assert status.status_code == 200
    assert status.json()["status"] == "QR_PENDING"
    assert status.json()["qr_payload"] is None
    assert QR_PAYLOAD not in status.text
    assert http.post(f"{QR}/disconnect", headers=firm.auth(role)).status_code == 403
    assert http.get(f"{QR}/status", headers=firm.auth()).json()["desired_state"] == "CONNECTED"


def test_disconnect_records_the_intent(http: httpx.Client, connected: Firm) -> None:
    r = http.post(f"{QR}/disconnect", headers=connected.auth(Role.ADMIN))
    assert r.status_code == 200
    assert r.json()["desired_state"] == "DISCONNECTED"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sends_a_message_that_waits_in_pending(http: httpx.Client, connected: Firm, role: Role) -> None:
    r = http.post(f"{QR}/send", json={"to": "0501234567", "body": "Your hearing is on Sunday"}, headers=connected.auth(role))
    assert r.status_code == 201, r.text
    message = r.json()
    assert message["status"] == "PENDING"
    assert message["direction"] == "OUTBOUND"
    assert message["remote_e164"] == "+966501234567"
    assert message["client_id"] == connected.client.id
    listing = http.get(f"{QR}/messages", params={"client_id": connected.client.id}, headers=connected.auth(role)).json()
    assert [m["id"] for m in listing["data"]] == [message["id"]]


def test_sending_to_a_client_by_id(http: httpx.Client, connected: Firm) -> None:
    r = http.post(f"{QR}/send", json={"client_id": connected.other_client.id, "body": "hello"}, headers=connected.auth())
    assert r.status_code == 201
    assert r.json()["remote_e164"] == "+966559876543"


def test_sending_while_not_connected_is_409(http: httpx.Client, firm: Firm) -> None:
    r = http.post(f"{QR}/send", json={"to": "0501234567", "body": "hi"}, headers=firm.auth(Role.AGENT))
    assert r.status_code == 409
    assert http.get(f"{QR}/messages", headers=firm.auth()).json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "0501234567", "body": "   "}, "body"),
        ({"to": "0501234567", "body": "x" * 4097}, "body"),
        ({"to": "0501234567"}, "body"),
        ({"body": "hi"}, "to"),
        ({"to": "0501234567", "client_id": 1, "body": "hi"}, "to"),
        ({"to": "call me", "body": "hi"}, "to"),
        ({"client_id": 2**40, "body": "hi"}, "client_id"),
        ({"client_id": "me", "body": "hi"}, "client_id"),
    ],
)
def test_bad_messages_are_422_and_queue_nothing(
    http: httpx.Client, connected: Firm, body: dict[str, Any], field: str
) -> None:
    r = http.post(f"{QR}/send", json=body, headers=connected.auth())
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert http.get(f"{QR}/messages", headers=connected.auth()).json()["count"] == 0


def test_sending_to_another_firms_client_is_404(http: httpx.Client, connected: Firm, rival: Firm) -> None:
    r = http.post(f"{QR}/send", json={"client_id": rival.client.id, "body": "hi"}, headers=connected.auth())
    assert r.status_code == 404
    assert http.get(f"{QR}/messages", headers=connected.auth()).json()["count"] == 0


def test_message_log_filters_and_pages(http: httpx.Client, connected: Firm) -> None:
    for i in range(3):
        http.post(f"{QR}/send", json={"to": "0501234567", "body": f"m{i}"}, headers=connected.auth())
    http.post(f"{QR}/send", json={"to": "0559876543", "body": "other"}, headers=connected.auth())
    seen: list[str] = []
    page = http.get(f"{QR}/messages", params={"limit": 2, "chat_jid": "966501234567@s.whatsapp.net"}, headers=connected.auth()).json()
    while True:
        assert page["count"] == 3
        seen += [m["body"] for m in page["data"]]
        if not page["next_cursor"]:
            break
        page = http.get(
            f"{QR}/messages",
            params={"limit": 2, "chat_jid": "966501234567@s.whatsapp.net", "cursor": page["next_cursor"]},
            headers=connected.auth(),
        ).json()
    assert seen == ["m2", "m1", "m0"]
    inbound = http.get(f"{QR}/messages", params={"direction": "INBOUND"}, headers=connected.auth()).json()
    assert inbound["count"] == 0


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "%%%"}, "cursor"),
        ({"direction": "SIDEWAYS"}, "direction"),
        ({"limit": 0}, "limit"),
        ({"date_from": "2025-01-01T00:00:00"}, "date_from"),
        ({"date_from": "never"}, "date_from"),
        ({"client_id": 0}, "client_id"),
    ],
)
def test_bad_message_queries_are_422(http: httpx.Client, firm: Firm, params: dict[str, Any], field: str) -> None:
    r = http.get(f"{QR}/messages", params=params, headers=firm.auth())
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", field]


DNS_ERROR = (
    'failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake request: Get "https://web.whatsapp.com/ws/chat": '
    "dial tcp: lookup web.whatsapp.com on 10.255.255.53:53: dial udp 10.255.255.53:53: connect: network is unreachable"
)


@pytest.mark.parametrize("role", ROLES)
def test_status_of_a_failed_line_carries_the_code_and_the_sentence_not_the_error_text(
    http: httpx.Client, engine: Engine, firm: Firm, role: Role
) -> None:
    assert http.post(f"{QR}/connect", headers=firm.auth()).status_code == 200
    _sidecar_claims(engine)
    with Session(engine) as session:
        assert store.record_error(session=session, tenant_id=firm.tenant_id, worker_id=WORKER, reason=DNS_ERROR, retry_count=1, next_retry_at=None)
        session.commit()
    r = http.get(f"{QR}/status", headers=firm.auth(role))
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ERROR" and body["error_code"] == "no_route"
    assert body["error_message"].startswith("This server can't reach WhatsApp: check its internet connection or the proxy setting")
    assert "10.255.255.53" not in r.text and "lookup" not in r.text and "last_error" not in body


def _uncertain_message(engine: Engine, firm: Firm) -> int:
    from services.models import MessageDirection, MessageStatus

    with Session(engine) as session:
        row = factories.make_message(session, firm.tenant, direction=MessageDirection.OUTBOUND, status=MessageStatus.SENDING, body="hearing moved")
        store.mark_uncertain(session=session, tenant_id=firm.tenant_id, message_id=row.id, detail="sender attempt abc-1 stopped")
        session.commit()
        assert row.id is not None
        return row.id


def test_an_uncertain_message_is_listed_and_can_be_sent_again_or_marked_sent(http: httpx.Client, engine: Engine, firm: Firm, rival: Firm) -> None:
    first, second = _uncertain_message(engine, firm), _uncertain_message(engine, firm)
    listed = {m["id"]: m for m in http.get(f"{QR}/messages", headers=firm.auth(Role.AGENT)).json()["data"]}
    assert listed[first]["status"] == "UNCERTAIN" and listed[first]["error_code"] == "send_uncertain"
    assert "may not have been sent" in listed[first]["error"] and "abc-1" not in str(listed)
    assert http.post(f"{QR}/messages/{first}/resend", headers=rival.auth()).status_code == 404
    r = http.post(f"{QR}/messages/{first}/resend", headers=firm.auth(Role.AGENT))
    assert r.status_code == 200 and r.json()["status"] == "PENDING"
    assert http.post(f"{QR}/messages/{first}/mark-sent", headers=firm.auth(Role.AGENT)).status_code == 409
    r = http.post(f"{QR}/messages/{second}/mark-sent", headers=firm.auth(Role.MANAGER))
    assert r.status_code == 200 and r.json()["status"] == "SENT" and r.json()["error"] is None
    assert http.post(f"{QR}/messages/0/resend", headers=firm.auth()).status_code == 422


def _sidecar_stores(engine: Engine, firm: Firm, *messages: Any) -> None:
    from services.whatsapp import ingest

    with Session(engine) as session:
        ingest.store_counted(session=session, tenant_id=firm.tenant_id, messages=list(messages))
        session.commit()


def test_counters_and_dead_letters_over_http(http: httpx.Client, engine: Engine, connected: Firm, rival: Firm) -> None:
    from services.models import WhatsappInbound
    from services.whatsapp import ingest

    hello = WhatsappInbound(wa_message_id="IN1", chat_jid="966507778899@s.whatsapp.net", remote_e164="+966507778899", body="hello")
    _sidecar_stores(engine, connected, hello, hello)
    lost = WhatsappInbound(wa_message_id="IN2", chat_jid="966507778899@s.whatsapp.net", remote_e164="+966507778899", body="kept raw")
    with Session(engine) as session:
        ingest.dead_letter(session=session, tenant_id=connected.tenant_id, message=lost, error="OperationalError: database is locked", attempts=3)
        session.commit()
    stats = http.get(f"{QR}/stats", headers=connected.auth(Role.AGENT))
    assert stats.status_code == 200, stats.text
    assert {k: stats.json()[k] for k in ("received", "stored", "failed", "dead_letters")} == {"received": 3, "stored": 1, "failed": 1, "dead_letters": 1}
    assert http.get(f"{QR}/dead-letters", headers=connected.auth(Role.AGENT)).status_code == 403
    page = http.get(f"{QR}/dead-letters", headers=connected.auth(Role.OWNER))
    assert page.status_code == 200 and page.json()["count"] == 1
    letter = page.json()["data"][0]
    assert letter["wa_message_id"] == "IN2" and WhatsappInbound.model_validate_json(letter["payload"]).body == "kept raw"
    # Another firm sees none of it, and its id is not found for them.
    assert http.get(f"{QR}/dead-letters", headers=rival.auth()).json()["count"] == 0
    assert http.post(f"{QR}/dead-letters/{letter['id']}/retry", headers=rival.auth()).status_code == 404
    r = http.post(f"{QR}/dead-letters/{letter['id']}/retry", headers=connected.auth())
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("stored", "failed", "dead_letters")} == {"stored": 2, "failed": 0, "dead_letters": 0}
    assert http.post(f"{QR}/dead-letters/{letter['id']}/retry", headers=connected.auth()).status_code == 404
    bodies = [m["body"] for m in http.get(f"{QR}/messages", headers=connected.auth()).json()["data"]]
    assert sorted(bodies) == ["hello", "kept raw"]


def test_status_says_the_service_is_not_running_once_its_lease_lapsed(http: httpx.Client, engine: Engine, connected: Firm) -> None:
    import sqlalchemy as sa

    from services.models import WhatsappSession, utcnow

    assert http.get(f"{QR}/status", headers=connected.auth(Role.AGENT)).json()["status"] == "CONNECTED"
    with Session(engine) as session:
        # The sidecar died 40 s ago: its lease (60 s) lapsed 10 s ago, and nobody rewrote the row.
        renewed = utcnow() - timedelta(seconds=70)
        session.execute(sa.update(WhatsappSession).values(lease_renewed_at=renewed, lease_expires_at=renewed + timedelta(seconds=60)))
        session.commit()
    status = http.get(f"{QR}/status", headers=connected.auth(Role.AGENT)).json()
    assert status["status"] == "ERROR" and status["error_code"] == "service_down" and status["service_running"] is False
    assert status["error_message"].startswith("WhatsApp service not running since ") and "messages are queued" in status["error_message"]
    assert status["connected_since"] is None and status["service_down_since"]


def test_a_file_is_sent_by_multipart_and_read_back_by_range_only_in_the_firm(
    http: httpx.Client, connected: Firm, rival: Firm, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib
    import os

    monkeypatch.setenv("WATHEEQ_WHATSAPP_MEDIA_MAX_MB", "0.5")
    pdf = b"%PDF-1.4\n" + os.urandom(200_000)
    r = http.post(
        f"{QR}/send-file",
        headers=connected.auth(Role.AGENT),
        data={"to": "0501234567", "caption": "the notice"},
        files={"file": ("notice.pdf", pdf, "application/pdf")},
    )
    assert r.status_code == 201, r.text
    sent = r.json()
    assert (sent["status"], sent["message_type"], sent["body"], sent["media_name"]) == ("PENDING", "document", "the notice", "notice.pdf")
    assert sent["media_sha256"] == hashlib.sha256(pdf).hexdigest() and sent["media_size"] == len(pdf)
    whole = http.get(f"{QR}/messages/{sent['id']}/media", headers=connected.auth(Role.AGENT))
    assert whole.status_code == 200 and whole.content == pdf and whole.headers["accept-ranges"] == "bytes"
    part = http.get(f"{QR}/messages/{sent['id']}/media", headers={**connected.auth(), "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == pdf[10:20] and part.headers["content-range"] == f"bytes 10-19/{len(pdf)}"
    assert http.get(f"{QR}/messages/{sent['id']}/media", headers={**connected.auth(), "Range": f"bytes={len(pdf) + 1}-"}).status_code == 416
    # Another firm: not found, whoever asks.
    assert http.get(f"{QR}/messages/{sent['id']}/media", headers=rival.auth()).status_code == 404
    assert http.post(f"{QR}/messages/{sent['id']}/media/retry", headers=rival.auth()).status_code == 404
    # Too large: refused with the reason, nothing queued.
    big = http.post(
        f"{QR}/send-file", headers=connected.auth(), data={"to": "0501234567"}, files={"file": ("big.bin", os.urandom(600_000), "application/octet-stream")}
    )
    assert big.status_code == 422 and "the file is larger than the 0.5 MB limit" in big.text
    assert http.get(f"{QR}/messages", headers=connected.auth()).json()["count"] == 1


def test_admin_sets_the_first_contact_cap_others_may_not_and_bad_values_change_nothing(
    http: httpx.Client, connected: Firm, rival: Firm
) -> None:
    r = http.get(f"{QR}/status", headers=connected.auth())
    assert (r.json()["first_contact_daily_cap"], r.json()["first_contacts_today"]) == (20, 0)
    r = http.put(f"{QR}/guardrails", json={"first_contact_daily_cap": 5}, headers=connected.auth(Role.ADMIN))
    assert r.status_code == 200, r.text
    assert r.json()["first_contact_daily_cap"] == 5
    assert http.put(f"{QR}/guardrails", json={"first_contact_daily_cap": 7}, headers=connected.auth(Role.AGENT)).status_code == 403
    for bad in (-1, 1001, "many"):
        r = http.put(f"{QR}/guardrails", json={"first_contact_daily_cap": bad}, headers=connected.auth(Role.OWNER))
        assert r.status_code == 422 and "first_contact_daily_cap" in r.text
    assert http.get(f"{QR}/status", headers=connected.auth()).json()["first_contact_daily_cap"] == 5
    # Another firm's setting is its own.
    assert http.get(f"{QR}/status", headers=rival.auth()).json()["first_contact_daily_cap"] == 20


def test_status_of_a_banned_line_says_sending_is_paused_with_the_reason_and_end(http: httpx.Client, engine: Engine, connected: Firm) -> None:
    from services.models import utcnow
    from services.whatsapp import guardrails

    until = utcnow() + timedelta(hours=3)
    with Session(engine) as session:
        guardrails.record_temporary_ban(session=session, tenant_id=connected.tenant_id, code="SEND_TO_TOO_MANY_PEOPLE", expires=until)
        session.commit()
    body = http.get(f"{QR}/status", headers=connected.auth(Role.AGENT)).json()
    assert body["ban_code"] == "SEND_TO_TOO_MANY_PEOPLE" and body["banned_until"]
    assert body["error_message"].startswith("Sending paused") and f"{until:%Y-%m-%d %H:%M} UTC" in body["error_message"]


def test_admin_chooses_to_decline_whatsapp_calls_over_http(http: httpx.Client, connected: Firm) -> None:
    assert http.get(f"{QR}/status", headers=connected.auth()).json()["reject_calls"] is False
    r = http.put(f"{QR}/guardrails", json={"reject_calls": True}, headers=connected.auth(Role.OWNER))
    assert r.status_code == 200 and r.json()["reject_calls"] is True
    assert r.json()["first_contact_daily_cap"] == 20  # left out: kept
    assert http.put(f"{QR}/guardrails", json={"reject_calls": False}, headers=connected.auth(Role.MANAGER)).status_code == 403
    assert http.get(f"{QR}/status", headers=connected.auth()).json()["reject_calls"] is True
