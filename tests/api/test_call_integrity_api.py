"""Calls keep believable times and figures, and a call logged in error can be deleted.

Issue 8's attacker logged a call on 9999-12-31 (after which the firm's history page and
export failed and nothing could remove it) and left a MISSED call with 396,723 s of talk.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import audit
from services.models import CallFilters, CallNote, CallStatus, Role, utcnow
from tests import factories
from tests.api.conftest import Firm
from watheeq_ui import exports, formatting

CALLS = "/api/v1/call-center/calls"
EDGE_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]


def _log(http: httpx.Client, firm: Firm, role: Role = Role.AGENT, **fields: Any) -> httpx.Response:
    body = {"direction": "INBOUND", "remote_number": "0501234567", **fields}
    return http.post(CALLS, json=body, headers=firm.auth(role))


def _count(http: httpx.Client, firm: Firm) -> int:
    return http.get(CALLS, headers=firm.auth(Role.OWNER)).json()["count"]


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    "started_at",
    [*EDGE_DATES, "in two days", "1999-12-31T23:59:59Z"],
)
def test_a_call_outside_2000_to_tomorrow_is_refused_naming_started_at(
    http: httpx.Client, firm: Firm, started_at: str
) -> None:
    if started_at == "in two days":  # computed here: test ids must not depend on the clock
        started_at = (utcnow() + timedelta(days=2)).isoformat()
    r = _log(http, firm, started_at=started_at)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "started_at"]
    assert _count(http, firm) == 0


def test_a_call_a_few_hours_ahead_is_accepted_as_clock_skew(http: httpx.Client, firm: Firm) -> None:
    r = _log(http, firm, started_at=(utcnow() + timedelta(hours=3)).isoformat())
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("field", ["answered_at", "ended_at"])
@pytest.mark.parametrize("value", EDGE_DATES)
def test_patch_times_at_the_edges_are_refused_naming_the_field(
    http: httpx.Client, firm: Firm, field: str, value: str
) -> None:
    call = _log(http, firm).json()
    status = "ANSWERED" if field == "answered_at" else "MISSED"
    r = http.patch(f"{CALLS}/{call['id']}", json={"status": status, field: value}, headers=firm.auth(Role.AGENT))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert http.get(f"{CALLS}/{call['id']}", headers=firm.auth(Role.AGENT)).json()["status"] == "RINGING"


@pytest.mark.parametrize("value", EDGE_DATES)
@pytest.mark.parametrize("param", ["date_from", "date_to"])
def test_history_and_message_filters_at_the_edges_answer_without_error(
    http: httpx.Client, firm: Firm, param: str, value: str
) -> None:
    assert _log(http, firm, started_at="2025-03-01T09:00:00Z").status_code == 201
    history = http.get(CALLS, params={param: value}, headers=firm.auth())
    assert history.status_code == 200, history.text
    # Clamped to what calls can hold: the far past finds everything since, the far future nothing after.
    expected = 1 if (param == "date_from") == value.startswith("0001") else 0
    assert history.json()["count"] == expected
    messages = http.get("/api/v1/whatsapp/qr/messages", params={param: value}, headers=firm.auth())
    assert messages.status_code == 200, messages.text


@pytest.mark.parametrize("value", EDGE_DATES)
def test_statistics_periods_at_the_edges_are_refused_naming_the_field(http: httpx.Client, firm: Firm, value: str) -> None:
    for param in ("date_from", "date_to"):
        r = http.get("/api/v1/call-center/stats", params={param: value}, headers=firm.auth())
        assert r.status_code == 422, (param, r.text)
        assert r.json()["detail"][0]["loc"] == ["query", param]


# --------------------------------------------------------------------------- a far-future call already stored


@pytest.fixture
def far_future_call(engine: Engine, firm: Firm) -> int:
    """A call stored before times were bounded (as the attacker's was)."""
    with Session(engine) as session:
        call = factories.make_call(
            session,
            firm.tenant,
            agent=firm.users[Role.AGENT],
            status=CallStatus.MISSED,
            started_at=datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc),
            ended_at=datetime(9999, 12, 31, 23, 0, 30, tzinfo=timezone.utc),
            ring_seconds=30,
            # Stored now, whatever its clock said.
            updated_at=utcnow(),
        )
        session.add(CallNote(tenant_id=firm.tenant_id, call_id=call.id, author_user_id=firm.user_id(Role.AGENT), body="x"))
        session.commit()
        assert call.id is not None
        return call.id


def test_a_stored_far_future_call_still_formats_and_exports(
    http: httpx.Client, firm: Firm, far_future_call: int, tmp_path, monkeypatch
) -> None:
    assert _log(http, firm, started_at="2025-03-01T09:00:00Z").status_code == 201
    history = http.get(CALLS, headers=firm.auth()).json()
    assert history["count"] == 2
    for call in history["data"]:
        started = datetime.fromisoformat(call["started_at"])
        for zone in ("Asia/Riyadh", "Pacific/Kiritimati", "America/Adak"):
            assert formatting.local_time(started, zone)
    assert formatting.local_time(datetime.max.replace(tzinfo=timezone.utc), "Asia/Riyadh").startswith("9999-12-31")
    assert formatting.local_time(datetime.min.replace(tzinfo=timezone.utc), "America/Adak")

    monkeypatch.setenv("WATHEEQ_EXPORT_DIR", str(tmp_path / "exports"))
    principal = factories.principal_of(firm.users[Role.OWNER])
    ticket, written = exports.write_history_csv(
        principal=principal, filters=CallFilters(), timezone="Asia/Riyadh", progress=lambda done, total: None
    )
    assert written == 2
    assert "9999-12-31 23:00:00" in (tmp_path / "exports" / f"{ticket}.csv").read_text(encoding="utf-8-sig")


# --------------------------------------------------------------------------- deleting a call


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_or_admin_deletes_a_call_with_its_notes_and_the_audit_log_says_so(
    http: httpx.Client, engine: Engine, firm: Firm, far_future_call: int, role: Role
) -> None:
    r = http.delete(f"{CALLS}/{far_future_call}", headers=firm.auth(role))
    assert r.status_code == 204, r.text
    assert http.get(f"{CALLS}/{far_future_call}", headers=firm.auth(role)).status_code == 404
    assert _count(http, firm) == 0
    assert http.delete(f"{CALLS}/{far_future_call}", headers=firm.auth(role)).status_code == 404
    with Session(engine) as session:
        assert session.exec(select(CallNote).where(CallNote.call_id == far_future_call)).all() == []
        events = audit.list_events(session=session, tenant_id=firm.tenant_id, action="call.delete")
    assert [(e.actor_user_id, e.object_type, e.object_id) for e in events] == [
        (firm.user_id(role), "call", str(far_future_call))
    ]
    assert events[0].detail["started_at"].startswith("9999-12-31")


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_managers_and_agents_may_not_delete_calls(http: httpx.Client, firm: Firm, role: Role) -> None:
    call = _log(http, firm, Role.AGENT).json()
    r = http.delete(f"{CALLS}/{call['id']}", headers=firm.auth(role))
    assert r.status_code == 403, r.text
    assert _count(http, firm) == 1


def test_deleting_another_firms_call_is_not_found_and_keeps_it(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    theirs = _log(http, rival, Role.AGENT).json()
    r = http.delete(f"{CALLS}/{theirs['id']}", headers=firm.auth(Role.OWNER))
    assert r.status_code == 404, r.text
    assert _count(http, rival) == 1


# --------------------------------------------------------------------------- consistent figures


def _missed(http: httpx.Client, firm: Firm) -> dict[str, Any]:
    call = _log(http, firm, started_at=(utcnow() - timedelta(minutes=5)).isoformat()).json()
    r = http.patch(f"{CALLS}/{call['id']}", json={"status": "MISSED"}, headers=firm.auth(Role.AGENT))
    assert r.status_code == 200, r.text
    return r.json()


def _completed(http: httpx.Client, firm: Firm) -> dict[str, Any]:
    start = utcnow() - timedelta(minutes=10)
    call = _log(http, firm, started_at=start.isoformat()).json()
    url, headers = f"{CALLS}/{call['id']}", firm.auth(Role.AGENT)
    answered = {"status": "ANSWERED", "answered_at": (start + timedelta(seconds=10)).isoformat()}
    assert http.patch(url, json=answered, headers=headers).status_code == 200
    ended = {"status": "COMPLETED", "ended_at": (start + timedelta(seconds=70)).isoformat()}
    r = http.patch(url, json=ended, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["talk_seconds"] == 60
    return r.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"talk_seconds": 396_723}, "talk_seconds"),
        ({"talk_seconds": 5}, "talk_seconds"),
        ({"answered_at": "2025-03-01T09:00:00Z"}, "answered_at"),
        ({"ended_at": "2025-03-01T09:00:00Z"}, "ended_at"),
        ({"ring_seconds": -1}, "ring_seconds"),
        ({"ring_seconds": 3600}, "ring_seconds"),
    ],
)
def test_figures_that_contradict_a_missed_call_are_refused(
    http: httpx.Client, firm: Firm, body: dict[str, Any], field: str
) -> None:
    call = _missed(http, firm)
    r = http.patch(f"{CALLS}/{call['id']}", json=body, headers=firm.auth(Role.OWNER))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert http.get(f"{CALLS}/{call['id']}", headers=firm.auth()).json() == {**call, "note_entries": [], "recordings": []}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"talk_seconds": 61 + 1}, "talk_seconds"),
        ({"talk_seconds": -5}, "talk_seconds"),
    ],
)
def test_talk_time_beyond_answer_to_end_is_refused(http: httpx.Client, firm: Firm, body: dict[str, Any], field: str) -> None:
    call = _completed(http, firm)
    r = http.patch(f"{CALLS}/{call['id']}", json=body, headers=firm.auth(Role.OWNER))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert http.get(f"{CALLS}/{call['id']}", headers=firm.auth()).json()["talk_seconds"] == 60


def test_a_correction_within_the_call_is_accepted(http: httpx.Client, firm: Firm) -> None:
    call = _completed(http, firm)
    r = http.patch(f"{CALLS}/{call['id']}", json={"talk_seconds": 45}, headers=firm.auth(Role.OWNER))
    assert r.status_code == 200, r.text
    assert r.json()["talk_seconds"] == 45


def test_a_call_cannot_end_before_it_started(http: httpx.Client, firm: Firm) -> None:
    start = utcnow() - timedelta(minutes=10)
    call = _log(http, firm, started_at=start.isoformat()).json()
    r = http.patch(
        f"{CALLS}/{call['id']}",
        json={"status": "MISSED", "ended_at": (start - timedelta(seconds=1)).isoformat()},
        headers=firm.auth(Role.AGENT),
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "ended_at"]
