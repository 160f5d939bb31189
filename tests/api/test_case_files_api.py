"""A case's files over HTTP: save a received WhatsApp file to a case (once), list and download
them by range, send one to the client; another firm's case, message or file is a 404."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.models import CaseFile, MessageDirection, Role, WhatsappDesiredState, WhatsappMessage, WhatsappSession, WhatsappStatus
from tests import factories
from tests.api.conftest import ROLES, Firm

PDF = b"%PDF-1.4\n" + os.urandom(120_000)


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(folder))
    return folder


def _received(engine: Engine, firm: Firm, data: bytes = PDF, *, client: bool = True) -> int:
    with Session(engine, expire_on_commit=False) as session:
        message = factories.make_received_file(session, firm.tenant, firm.client if client else None, data)
        session.commit()
        assert message.id is not None
        return message.id


def _connect(engine: Engine, firm: Firm) -> None:
    with Session(engine) as session:
        session.add(WhatsappSession(tenant_id=firm.tenant_id, desired_state=WhatsappDesiredState.CONNECTED, status=WhatsappStatus.CONNECTED))
        session.commit()


def _files(case_id: int) -> str:
    return f"/api/v1/cases/{case_id}/files"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_saves_a_received_file_once_and_lists_it(http: httpx.Client, engine: Engine, firm: Firm, role: Role) -> None:
    message_id = _received(engine, firm)
    first = http.post(_files(firm.case.id), headers=firm.auth(role), json={"message_id": message_id})
    assert first.status_code == 201, first.text
    saved = first.json()
    assert saved["created"] is True and saved["name"] == "notice.pdf" and saved["size_bytes"] == len(PDF)
    assert saved["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert (saved["source"], saved["source_message_id"], saved["source_direction"], saved["source_number"]) == ("whatsapp", message_id, "INBOUND", firm.client.phone_e164)
    again = http.post(_files(firm.case.id), headers=firm.auth(role), json={"message_id": message_id})
    assert again.status_code == 200 and again.json()["id"] == saved["id"] and again.json()["created"] is False
    listed = http.get(_files(firm.case.id), headers=firm.auth(role)).json()
    assert listed["count"] == 1 and [f["id"] for f in listed["data"]] == [saved["id"]]
    assert listed["data"][0]["case_title"] == firm.case.title
    log = http.get("/api/v1/whatsapp/qr/messages", headers=firm.auth(role)).json()
    assert [(m["id"], m["saved_to_cases"]) for m in log["data"]] == [(message_id, [firm.case.title])]


def test_a_case_file_downloads_byte_identical_and_by_range(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    message_id = _received(engine, firm)
    saved = http.post(_files(firm.case.id), headers=firm.auth(Role.AGENT), json={"message_id": message_id}).json()
    url = f"{_files(firm.case.id)}/{saved['id']}"
    whole = http.get(url, headers=firm.auth(Role.AGENT), params={"download": "true"})
    assert whole.status_code == 200 and whole.content == PDF
    assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-type"] == "application/pdf"
    assert whole.headers["content-disposition"] == 'attachment; filename="notice.pdf"'
    part = http.get(url, headers={**firm.auth(), "Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == PDF[100:200] and part.headers["content-range"] == f"bytes 100-199/{len(PDF)}"
    tail = http.get(url, headers={**firm.auth(), "Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == PDF[-10:]
    outside = http.get(url, headers={**firm.auth(), "Range": f"bytes={len(PDF)}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(PDF)}"
    assert http.get(url).status_code == 401


def test_another_firms_case_message_or_file_is_404_and_nothing_changes(http: httpx.Client, engine: Engine, firm: Firm, rival: Firm) -> None:
    mine = _received(engine, firm)
    theirs = _received(engine, rival)
    # My message to their case, their message to my case: not found.
    r = http.post(_files(rival.case.id), headers=firm.auth(), json={"message_id": mine})
    assert r.status_code == 404 and r.json()["detail"] == "case not found"
    r = http.post(_files(firm.case.id), headers=firm.auth(), json={"message_id": theirs})
    assert r.status_code == 404 and r.json()["detail"] == "message not found"
    saved = http.post(_files(firm.case.id), headers=firm.auth(), json={"message_id": mine}).json()
    url = f"{_files(firm.case.id)}/{saved['id']}"
    assert http.get(_files(firm.case.id), headers=rival.auth()).status_code == 404
    assert http.get(url, headers=rival.auth()).status_code == 404
    assert http.get(f"{_files(rival.case.id)}/{saved['id']}", headers=rival.auth()).status_code == 404
    # The right file under another of my cases' ids: not found either.
    with Session(engine) as session:
        other = factories.make_case(session, firm.tenant, firm.client)
        session.commit()
        other_id = other.id
    assert http.get(f"{_files(other_id)}/{saved['id']}", headers=firm.auth()).status_code == 404
    _connect(engine, rival)
    assert http.post(f"{url}/send", headers=rival.auth(), json={"to": "0501234567"}).status_code == 404
    with Session(engine) as session:
        assert len(session.exec(select(CaseFile)).all()) == 1
        assert not session.exec(select(WhatsappMessage).where(WhatsappMessage.direction == MessageDirection.OUTBOUND)).all()


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "message_id"), ({"message_id": 0}, "message_id"), ({"message_id": "x"}, "message_id"), ({"message_id": 2**31}, "message_id")],
)
def test_bad_save_requests_are_422_with_the_field(http: httpx.Client, firm: Firm, body: dict, field: str) -> None:
    r = http.post(_files(firm.case.id), headers=firm.auth(), json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field


def test_a_clients_file_only_goes_to_their_cases_and_a_message_without_a_file_is_409(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    message_id = _received(engine, firm)
    with Session(engine) as session:
        others = factories.make_case(session, firm.tenant, firm.other_client, title="Someone else's")
        text = factories.make_message(session, firm.tenant, client_id=firm.client.id, body="hello")
        session.commit()
        others_id, text_id = others.id, text.id
    r = http.post(_files(others_id), headers=firm.auth(), json={"message_id": message_id})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "case_id"]
    r = http.post(_files(firm.case.id), headers=firm.auth(), json={"message_id": text_id})
    assert r.status_code == 409 and r.json()["field"] == "message_id"
    with Session(engine) as session:
        assert not session.exec(select(CaseFile)).all()


def test_a_case_file_is_sent_to_the_client_through_the_outbox(http: httpx.Client, engine: Engine, firm: Firm) -> None:
    message_id = _received(engine, firm)
    saved = http.post(_files(firm.case.id), headers=firm.auth(Role.AGENT), json={"message_id": message_id}).json()
    url = f"{_files(firm.case.id)}/{saved['id']}/send"
    # The line is down: 409, nothing queued.
    down = http.post(url, headers=firm.auth(Role.AGENT), json={"client_id": firm.client.id})
    assert down.status_code == 409 and down.json()["field"] == "status"
    _connect(engine, firm)
    r = http.post(url, headers=firm.auth(Role.AGENT), json={"client_id": firm.client.id, "caption": "your notice"})
    assert r.status_code == 201, r.text
    sent = r.json()
    assert (sent["status"], sent["direction"], sent["client_id"], sent["body"], sent["media_name"]) == ("PENDING", "OUTBOUND", firm.client.id, "your notice", "notice.pdf")
    assert sent["media_sha256"] == hashlib.sha256(PDF).hexdigest() and sent["media_size"] == len(PDF)
    # It is in the message log, and its file reads back as the same bytes.
    log = http.get("/api/v1/whatsapp/qr/messages", headers=firm.auth(), params={"direction": "OUTBOUND"}).json()
    assert [m["id"] for m in log["data"]] == [sent["id"]]
    assert http.get(f"/api/v1/whatsapp/qr/messages/{sent['id']}/media", headers=firm.auth()).content == PDF
    # To a number too; to another client, to both or to neither: refused with the field.
    assert http.post(url, headers=firm.auth(), json={"to": "0501234567"}).status_code == 201
    wrong = http.post(url, headers=firm.auth(), json={"client_id": firm.other_client.id})
    assert wrong.status_code == 422 and wrong.json()["detail"][0]["loc"] == ["body", "case_file_id"]
    both = http.post(url, headers=firm.auth(), json={"client_id": firm.client.id, "to": "0501234567"})
    assert both.status_code == 422 and both.json()["detail"][0]["loc"] == ["body", "to"]
    long = http.post(url, headers=firm.auth(), json={"client_id": firm.client.id, "caption": "x" * 4097})
    assert long.status_code == 422 and long.json()["detail"][0]["loc"][-1] == "caption"
    assert http.get("/api/v1/whatsapp/qr/messages", headers=firm.auth(), params={"direction": "OUTBOUND"}).json()["count"] == 2
