"""Agent states, the callback queue and business hours over HTTP: roles, isolation, bad input."""

from __future__ import annotations

import httpx

from services.models import Role
from tests.api.conftest import Firm

BASE = "/api/v1/call-center"


def test_an_agent_sets_away_and_managers_see_every_agent(http: httpx.Client, firm: Firm) -> None:
    agent = firm.auth(Role.AGENT)
    r = http.put(f"{BASE}/agents/me/state", json={"status": "AWAY"}, headers=agent)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "reason"
    r = http.put(f"{BASE}/agents/me/state", json={"status": "AWAY", "reason": "COURT"}, headers=agent)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["reason"]) == ("AWAY", "COURT")
    r = http.put(f"{BASE}/agents/me/state", json={"status": "ON_CALL"}, headers=agent)
    assert r.status_code == 422
    r = http.put(f"{BASE}/agents/me/state", json={"status": "SLEEPING"}, headers=agent)
    assert r.status_code == 422
    mine = http.get(f"{BASE}/agents/states", headers=agent).json()
    assert [s["user_id"] for s in mine] == [firm.user_id(Role.AGENT)]
    everyone = {s["user_id"]: s for s in http.get(f"{BASE}/agents/states", headers=firm.auth(Role.MANAGER)).json()}
    assert set(everyone) == {firm.user_id(r) for r in Role}
    assert everyone[firm.user_id(Role.AGENT)]["status"] == "AWAY"
    assert everyone[firm.user_id(Role.OWNER)]["status"] == "OFFLINE"


def test_the_callback_queue_claim_close_and_isolation(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    agent, manager = firm.auth(Role.AGENT), firm.auth(Role.MANAGER)
    r = http.post(f"{BASE}/callbacks", json={"number": "0501234567", "channel": "WHATSAPP"}, headers=agent)
    assert r.status_code == 201, r.text
    item = r.json()
    assert (item["miss_count"], item["channel"], item["number_e164"]) == (1, "WHATSAPP", "+966501234567")
    r = http.post(f"{BASE}/callbacks", json={"number": "+966501234567"}, headers=manager)
    assert r.json()["id"] == item["id"] and r.json()["miss_count"] == 2
    assert http.post(f"{BASE}/callbacks", json={"number": ""}, headers=agent).status_code == 422
    assert http.post(f"{BASE}/callbacks", json={"number": "no digits"}, headers=agent).status_code == 422
    # Another firm's item is not found, whatever it tries.
    other = rival.auth(Role.OWNER)
    assert http.post(f"{BASE}/callbacks/{item['id']}/claim", headers=other).status_code == 404
    assert http.post(f"{BASE}/callbacks/{item['id']}/close", json={"outcome": "REACHED"}, headers=other).status_code == 404
    assert http.get(f"{BASE}/callbacks", headers=other).json() == []
    r = http.post(f"{BASE}/callbacks/{item['id']}/claim", headers=agent)
    assert r.status_code == 200 and r.json()["claimed_by_user_id"] == firm.user_id(Role.AGENT)
    r = http.post(f"{BASE}/callbacks/{item['id']}/claim", headers=manager)
    assert r.status_code == 409
    [listed] = http.get(f"{BASE}/callbacks", headers=manager).json()
    assert listed["claimed_by_name"] == firm.users[Role.AGENT].full_name
    assert http.post(f"{BASE}/callbacks/{item['id']}/close", json={"outcome": "MAYBE"}, headers=agent).status_code == 422
    r = http.post(f"{BASE}/callbacks/{item['id']}/close", json={"outcome": "NO_ANSWER"}, headers=agent)
    assert r.status_code == 200 and r.json()["outcome"] == "NO_ANSWER"
    assert http.get(f"{BASE}/callbacks", headers=agent).json() == []
    [closed] = http.get(f"{BASE}/callbacks", params={"include_closed": True}, headers=agent).json()
    assert closed["closed_at"] is not None
    assert http.post(f"{BASE}/callbacks/{item['id']}/close", json={"outcome": "REACHED"}, headers=agent).status_code == 409
    assert http.post(f"{BASE}/callbacks/999999/claim", headers=agent).status_code == 404


def test_business_hours_are_set_by_admins_only(http: httpx.Client, firm: Firm) -> None:
    r = http.get(f"{BASE}/business-hours", headers=firm.auth(Role.AGENT))
    assert r.status_code == 200 and r.json()["callback_target_minutes"] == 30
    body = {"days": [6, 0, 1, 2, 3], "opens": "08:30", "closes": "16:00", "holidays": ["2026-12-02"], "callback_target_minutes": 15}
    assert http.put(f"{BASE}/business-hours", json=body, headers=firm.auth(Role.MANAGER)).status_code == 403
    r = http.put(f"{BASE}/business-hours", json=body, headers=firm.auth(Role.ADMIN))
    assert r.status_code == 200 and r.json()["opens"] == "08:30"
    r = http.put(f"{BASE}/business-hours", json={**body, "closes": "07:00"}, headers=firm.auth(Role.ADMIN))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "closes"
    assert http.get(f"{BASE}/business-hours", headers=firm.auth(Role.AGENT)).json()["callback_target_minutes"] == 15


def test_reports_are_for_supervisors_and_bounded(http: httpx.Client, firm: Firm) -> None:
    params = {"date_from": "2026-12-01", "date_to": "2026-12-07"}
    assert http.get(f"{BASE}/reports/agents", params=params, headers=firm.auth(Role.AGENT)).status_code == 403
    r = http.get(f"{BASE}/reports/agents", params=params, headers=firm.auth(Role.MANAGER))
    assert r.status_code == 200 and r.json() == []
    r = http.get(f"{BASE}/reports/callback-times", params=params, headers=firm.auth(Role.MANAGER))
    assert [row["day"] for row in r.json()] == [f"2026-12-0{d}" for d in range(1, 8)]
    r = http.get(f"{BASE}/reports/agents", params={"date_from": "2026-01-01", "date_to": "2026-03-01"}, headers=firm.auth(Role.MANAGER))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "date_to"
