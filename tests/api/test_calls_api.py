"""The call log and call analytics over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from services.models import Role
from tests.api.conftest import Firm

CALLS = "/api/v1/call-center/calls"


def _log(http: httpx.Client, firm: Firm, role: Role = Role.AGENT, **fields: Any) -> httpx.Response:
    body = {"direction": "INBOUND", "remote_number": "+966 50 123 4567", **fields}
    return http.post(CALLS, json=body, headers=firm.auth(role))


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def test_logging_a_call_matches_the_client_by_number(http: httpx.Client, firm: Firm) -> None:
    r = _log(http, firm, sip_call_id="abc@pbx")
    assert r.status_code == 201, r.text
    call = r.json()
    assert call["remote_e164"] == "+966501234567"
    assert call["client_id"] == firm.client.id
    assert call["client_name"] == firm.client.name
    assert call["agent_user_id"] == firm.user_id(Role.AGENT)
    assert call["status"] == "RINGING"


def test_logging_the_same_sip_call_id_twice_returns_the_same_call(http: httpx.Client, firm: Firm) -> None:
    first = _log(http, firm, sip_call_id="dup@pbx").json()
    again = _log(http, firm, sip_call_id="dup@pbx", status="ANSWERED")
    assert again.status_code in (200, 201)
    assert again.json()["id"] == first["id"]
    assert again.json()["status"] == "ANSWERED"
    history = http.get(CALLS, headers=firm.auth(Role.OWNER)).json()
    assert history["count"] == 1


def test_agent_may_not_log_a_call_for_another_agent(http: httpx.Client, firm: Firm) -> None:
    r = _log(http, firm, Role.AGENT, agent_user_id=firm.user_id(Role.MANAGER))
    assert r.status_code == 403


def test_supervisor_may_log_a_call_for_an_agent(http: httpx.Client, firm: Firm) -> None:
    r = _log(http, firm, Role.MANAGER, agent_user_id=firm.user_id(Role.AGENT))
    assert r.status_code == 201
    assert r.json()["agent_user_id"] == firm.user_id(Role.AGENT)


def test_logging_for_an_agent_of_another_firm_is_404(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    r = _log(http, firm, Role.OWNER, agent_user_id=rival.user_id(Role.AGENT))
    assert r.status_code == 404
    assert http.get(CALLS, headers=rival.auth()).json()["count"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"remote_number": ""}, "remote_number"),
        ({"remote_number": "1" * 65}, "remote_number"),
        ({"direction": "SIDEWAYS"}, "direction"),
        ({"status": "EXPLODED"}, "status"),
        ({"started_at": "2024-05-01T10:00:00"}, "started_at"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"agent_user_id": 2**40}, "agent_user_id"),
        ({"sip_call_id": "x" * 300}, "sip_call_id"),
    ],
)
def test_bad_call_input_is_422_naming_the_field(
    http: httpx.Client, firm: Firm, fields: dict[str, Any], field: str
) -> None:
    r = _log(http, firm, **fields)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert http.get(CALLS, headers=firm.auth(Role.OWNER)).json()["count"] == 0


def test_history_shows_agents_only_their_own_calls(http: httpx.Client, firm: Firm) -> None:
    _log(http, firm, Role.AGENT, sip_call_id="a1")
    _log(http, firm, Role.MANAGER, sip_call_id="m1")
    agent_view = http.get(CALLS, headers=firm.auth(Role.AGENT)).json()
    assert [c["sip_call_id"] for c in agent_view["data"]] == ["a1"]
    for role in (Role.OWNER, Role.ADMIN, Role.MANAGER):
        assert http.get(CALLS, headers=firm.auth(role)).json()["count"] == 2


def test_history_filters_and_pages_with_a_cursor(http: httpx.Client, firm: Firm) -> None:
    base = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
    for i in range(5):
        status = "MISSED" if i % 2 else "ANSWERED"
        started = _iso(base + timedelta(minutes=i))
        assert _log(http, firm, sip_call_id=f"c{i}", status=status, started_at=started).status_code == 201
    _log(http, firm, direction="OUTBOUND", remote_number="0559876543", sip_call_id="out", started_at=_iso(base))

    q = {"status": ["MISSED", "ANSWERED"], "direction": "INBOUND", "page_size": 2}
    q |= {"date_from": _iso(base), "date_to": _iso(base + timedelta(hours=1))}
    seen: list[str] = []
    page = http.get(CALLS, params=q, headers=firm.auth(Role.MANAGER)).json()
    while True:
        assert page["count"] == 5
        seen += [c["sip_call_id"] for c in page["data"]]
        if not page["next_cursor"]:
            break
        page = http.get(CALLS, params=q | {"cursor": page["next_cursor"]}, headers=firm.auth(Role.MANAGER)).json()
    assert seen == ["c4", "c3", "c2", "c1", "c0"]

    missed = http.get(CALLS, params={"status": "MISSED"}, headers=firm.auth()).json()
    assert {c["sip_call_id"] for c in missed["data"]} == {"c1", "c3"}
    by_number = http.get(CALLS, params={"number": "0559876543"}, headers=firm.auth()).json()
    assert [c["sip_call_id"] for c in by_number["data"]] == ["out"]
    by_client = http.get(CALLS, params={"client_id": firm.client.id}, headers=firm.auth()).json()
    assert by_client["count"] == 5
    page_two = http.get(CALLS, params={"page": 2, "page_size": 4}, headers=firm.auth()).json()
    assert page_two["page"] == 2 and len(page_two["data"]) == 2


def test_a_number_search_past_the_bound_says_so_and_pages_on(
    http: httpx.Client, firm: Firm, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.call_center import call_history

    monkeypatch.setattr(call_history, "COUNT_BOUND", 3)
    base = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
    for i in range(5):
        assert _log(http, firm, sip_call_id=f"n{i}", started_at=_iso(base + timedelta(minutes=i))).status_code == 201
    q = {"number": "1234567", "page_size": 2}
    seen: list[str] = []
    page = http.get(CALLS, params=q, headers=firm.auth(Role.MANAGER)).json()
    while True:
        # Counted up to the bound: the count is the bound, and says it is one.
        assert (page["count"], page["count_is_lower_bound"]) == (3, True)
        seen += [c["sip_call_id"] for c in page["data"]]
        if not page["next_cursor"]:
            break
        page = http.get(CALLS, params=q | {"cursor": page["next_cursor"]}, headers=firm.auth(Role.MANAGER)).json()
    assert seen == ["n4", "n3", "n2", "n1", "n0"]
    # The last page by number knows them all; other filters count every match.
    last = http.get(CALLS, params=q | {"page": 3}, headers=firm.auth(Role.MANAGER)).json()
    assert ([c["sip_call_id"] for c in last["data"]], last["count"], last["count_is_lower_bound"]) == (["n0"], 5, False)
    everything = http.get(CALLS, params={"page_size": 2}, headers=firm.auth(Role.MANAGER)).json()
    assert (everything["count"], everything["count_is_lower_bound"]) == (5, False)
    # The OpenAPI document says what the flag means.
    schema = http.get("/api/v1/openapi.json").json()["components"]["schemas"]["CallsPage"]
    assert schema["properties"]["count_is_lower_bound"]["type"] == "boolean"
    assert "more than" in schema["properties"]["count_is_lower_bound"]["description"]
    assert "count" in schema["required"] and "count_is_lower_bound" not in schema["required"]


def test_history_sorts_by_start_time_either_way_and_pages_each_order(http: httpx.Client, firm: Firm) -> None:
    base = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
    for i in range(5):
        assert _log(http, firm, sip_call_id=f"c{i}", started_at=_iso(base + timedelta(minutes=i))).status_code == 201
    headers = firm.auth(Role.MANAGER)

    def walk(sort: str | None) -> list[str]:
        q: dict[str, Any] = {"page_size": 2} | ({"sort": sort} if sort else {})
        seen: list[str] = []
        page = http.get(CALLS, params=q, headers=headers).json()
        while True:
            seen += [c["sip_call_id"] for c in page["data"]]
            if not page["next_cursor"]:
                return seen
            page = http.get(CALLS, params=q | {"cursor": page["next_cursor"]}, headers=headers).json()

    newest = ["c4", "c3", "c2", "c1", "c0"]
    assert walk(None) == walk("-started_at") == newest
    assert walk("started_at") == newest[::-1]
    second = http.get(CALLS, params={"sort": "started_at", "page": 2, "page_size": 2}, headers=headers).json()
    assert [c["sip_call_id"] for c in second["data"]] == ["c2", "c3"]

    newest_cursor = http.get(CALLS, params={"page_size": 2}, headers=headers).json()["next_cursor"]
    crossed = http.get(CALLS, params={"sort": "started_at", "cursor": newest_cursor}, headers=headers)
    assert crossed.status_code == 422 and crossed.json()["detail"][0]["loc"][:2] == ["query", "cursor"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"sort": "started"}, "sort"),
        ({"sort": "-id"}, "sort"),
        ({"sort": "NEWEST_FIRST"}, "sort"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OjE"}, "cursor"),
        ({"cursor": "MDo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5"}, None),
        ({"status": "LOST"}, "status"),
        ({"direction": "UP"}, "direction"),
        ({"date_from": "2025-13-45"}, "date_from"),
        ({"date_from": "2025-03-01T00:00:00"}, "date_from"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 100000}, "page_size"),
        ({"page": 99999999999999999999}, "page"),
        ({"agent_user_id": 2**33}, "agent_user_id"),
        ({"number": "abc"}, "number"),
    ],
)
def test_bad_history_queries_are_422(http: httpx.Client, firm: Firm, params: dict[str, Any], field: str | None) -> None:
    r = http.get(CALLS, params=params, headers=firm.auth())
    assert r.status_code == 422, r.text
    loc = r.json()["detail"][0]["loc"]
    assert loc[0] == "query"
    if field:
        assert loc[1] == field


def test_call_detail_and_patch_through_the_lifecycle(http: httpx.Client, firm: Firm) -> None:
    call = _log(http, firm, sip_call_id="life").json()
    url = f"{CALLS}/{call['id']}"
    answered = http.patch(url, json={"status": "ANSWERED"}, headers=firm.auth(Role.AGENT))
    assert answered.status_code == 200, answered.text
    assert answered.json()["answered_at"] is not None
    done = http.patch(url, json={"status": "COMPLETED", "hangup_cause": "normal"}, headers=firm.auth(Role.AGENT))
    assert done.json()["status"] == "COMPLETED"
    assert done.json()["hangup_cause"] == "normal"
    back = http.patch(url, json={"status": "RINGING"}, headers=firm.auth(Role.AGENT))
    assert back.status_code == 409
    assert back.json()["field"] == "status"

    noted = http.patch(url, json={"note": "asked about the hearing", "case_id": firm.case.id}, headers=firm.auth(Role.AGENT))
    assert noted.status_code == 200, noted.text
    detail = http.get(url, headers=firm.auth(Role.MANAGER)).json()
    assert detail["case_id"] == firm.case.id
    assert detail["case_title"] == firm.case.title
    (entry,) = detail["note_entries"]
    assert entry["body"] == "asked about the hearing"
    assert entry["author_user_id"] == firm.user_id(Role.AGENT)


def test_a_bad_note_changes_nothing_of_the_status(http: httpx.Client, firm: Firm) -> None:
    call = _log(http, firm, sip_call_id="atomic").json()
    url = f"{CALLS}/{call['id']}"
    r = http.patch(url, json={"status": "ANSWERED", "note": "   "}, headers=firm.auth(Role.AGENT))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "note"]
    assert http.get(url, headers=firm.auth(Role.AGENT)).json()["status"] == "RINGING"


def test_linking_a_case_of_another_client_is_422(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    call = _log(http, firm, sip_call_id="case").json()
    url = f"{CALLS}/{call['id']}"
    r = http.patch(url, json={"case_id": rival.case.id}, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "case_id"]
    assert http.get(url, headers=firm.auth()).json()["case_id"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"status": "DANCING"}, "status"),
        ({"ring_seconds": -1}, "ring_seconds"),
        ({"talk_seconds": 2**64}, "talk_seconds"),
        ({"case_id": "one"}, "case_id"),
        ({"ended_at": "2025-01-01T00:00:00"}, "ended_at"),
        ({"note": "x" * 10_001}, "note"),
    ],
)
def test_bad_patches_are_422(http: httpx.Client, firm: Firm, body: dict[str, Any], field: str) -> None:
    call = _log(http, firm).json()
    r = http.patch(f"{CALLS}/{call['id']}", json=body, headers=firm.auth())
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]


def test_agent_cannot_see_or_change_another_agents_call(http: httpx.Client, firm: Firm) -> None:
    call = _log(http, firm, Role.MANAGER).json()
    url = f"{CALLS}/{call['id']}"
    assert http.get(url, headers=firm.auth(Role.AGENT)).status_code == 404
    assert http.patch(url, json={"note": "mine now"}, headers=firm.auth(Role.AGENT)).status_code == 404
    assert http.get(url, headers=firm.auth(Role.MANAGER)).json()["notes"] == ""


def test_unknown_call_is_404(http: httpx.Client, firm: Firm) -> None:
    assert http.get(f"{CALLS}/999999", headers=firm.auth()).status_code == 404


def test_stats_count_the_range_per_agent(http: httpx.Client, firm: Firm) -> None:
    start = datetime.now(timezone.utc) - timedelta(hours=2)
    answered = _log(http, firm, sip_call_id="s1", started_at=_iso(start)).json()
    http.patch(
        f"{CALLS}/{answered['id']}",
        json={"status": "ANSWERED", "answered_at": _iso(start + timedelta(seconds=5))},
        headers=firm.auth(Role.AGENT),
    )
    _log(http, firm, sip_call_id="s2", status="MISSED", started_at=_iso(start))
    _log(http, firm, Role.MANAGER, sip_call_id="s3", direction="OUTBOUND", started_at=_iso(start))
    q = {"date_from": _iso(start - timedelta(minutes=1)), "date_to": _iso(start + timedelta(hours=1))}

    stats = http.get("/api/v1/call-center/stats", params=q, headers=firm.auth(Role.MANAGER))
    assert stats.status_code == 200, stats.text
    s = stats.json()
    assert (s["total"], s["inbound"], s["outbound"], s["answered"], s["missed"]) == (3, 2, 1, 1, 1)
    # Of the two inbound calls one was answered, within 5 s: the missed one counts against.
    assert s["service_level"] == 0.5
    strict = http.get("/api/v1/call-center/stats", params=q | {"service_level_threshold": 3}, headers=firm.auth()).json()
    assert strict["service_level"] == 0.0
    assert strict["service_level_threshold_seconds"] == 3

    agent = http.get("/api/v1/call-center/stats", params=q, headers=firm.auth(Role.AGENT)).json()
    assert agent["total"] == 2
    assert [a["agent_user_id"] for a in agent["per_agent"]] == [firm.user_id(Role.AGENT)]


def test_stats_default_to_today(http: httpx.Client, firm: Firm) -> None:
    _log(http, firm)
    s = http.get("/api/v1/call-center/stats", headers=firm.auth()).json()
    assert s["total"] == 1
    assert s["timezone"] == "Asia/Riyadh"


@pytest.mark.parametrize(
    "params",
    [
        {"date_from": "tomorrow"},
        {"date_from": "2025-01-01T00:00:00"},
        {"date_from": "2025-02-01T00:00:00Z", "date_to": "2025-01-01T00:00:00Z"},
        {"date_from": "2020-01-01T00:00:00Z", "date_to": "2025-01-01T00:00:00Z"},
        {"service_level_threshold": -1},
        {"service_level_threshold": 2**65},
        {"date_from": "0001-01-01T00:00:00+01:00"},
        {"date_to": "9999-12-31T23:59:59-05:00"},
    ],
)
def test_bad_stats_queries_are_422(http: httpx.Client, firm: Firm, params: dict[str, Any]) -> None:
    r = http.get("/api/v1/call-center/stats", params=params, headers=firm.auth())
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][0] == "query"
