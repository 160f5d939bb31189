"""``POST /api/v1/call-center/calls`` as a LeanRoute (watheeq_ui/api/lean.py): the same
contract as a FastAPI route (schema, answers, refusals, token re-checked on every request,
request id and access line), without FastAPI's dependency solving."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import accounts, logs
from services.models import ApiToken, Call, Role, User
from tests.api.conftest import Firm
from watheeq_ui.api.app import api
from watheeq_ui.api.deps import AuthorisedDep
from watheeq_ui.api.lean import LeanRoute

CALLS = "/api/v1/call-center/calls"
BODY = {"direction": "INBOUND", "remote_number": "+966 50 123 4567"}


def _calls(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(Call.id)).all())


def test_post_calls_is_the_apps_first_route_and_documented_as_before(http: httpx.Client) -> None:
    assert isinstance(api.router.routes[0], LeanRoute) and api.router.routes[0].path == CALLS
    spec = http.get("/api/v1/openapi.json").json()
    post = spec["paths"][CALLS]["post"]
    assert "get" in spec["paths"][CALLS]  # the history, from the router, beside it
    assert post["operationId"] == "log_call_api_v1_call_center_calls_post"
    assert post["tags"] == ["call center"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CallCreateIn")
    assert post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/CallPublic")
    assert set(post["responses"]) == {"201", "400", "401", "403", "404", "409", "422"}
    assert post["security"] == [{"OAuth2PasswordBearer": []}]


def test_the_lean_answer_is_the_one_fastapi_gives(http: httpx.Client, firm: Firm) -> None:
    lean = http.post(CALLS, json={**BODY, "sip_call_id": "same@pbx"}, headers=firm.auth(Role.AGENT))
    # A JSON media type other than application/json is left to FastAPI's own handler.
    content = json.dumps({**BODY, "sip_call_id": "same@pbx"})
    ordinary = http.post(
        CALLS, content=content, headers={**firm.auth(Role.AGENT), "Content-Type": "application/vnd.watheeq+json"}
    )
    assert lean.status_code == ordinary.status_code == 201, (lean.text, ordinary.text)
    assert lean.content == ordinary.content
    assert lean.headers["content-type"] == ordinary.headers["content-type"] == "application/json"
    assert lean.json()["client_id"] == firm.client.id and lean.json()["agent_user_id"] == firm.user_id(Role.AGENT)


def _revoke(engine: Engine, firm: Firm, role: Role) -> None:
    with Session(engine) as session:
        accounts.revoke_token(session=session, token=firm.tokens[role])
        session.commit()


def _disable(engine: Engine, firm: Firm, role: Role) -> None:
    with Session(engine) as session:
        user = session.get(User, firm.user_id(role))
        assert user is not None
        user.active = False
        session.add(user)
        session.commit()


def _idle(engine: Engine, firm: Firm, role: Role) -> None:
    # A dashboard session left alone longer than its idle timeout.
    with Session(engine) as session:
        for row in session.exec(select(ApiToken).where(ApiToken.user_id == firm.user_id(role))).all():
            row.idle_timeout_seconds = 60
            row.last_used_at = datetime.now(timezone.utc) - timedelta(minutes=5)
            session.add(row)
        session.commit()


@pytest.mark.parametrize("end", [_revoke, _disable, _idle], ids=["revoked", "user disabled", "idle"])
def test_a_token_that_stops_holding_is_refused_on_the_next_request(
    http: httpx.Client, firm: Firm, engine: Engine, end: Any
) -> None:
    first = http.post(CALLS, json={**BODY, "sip_call_id": "before@pbx"}, headers=firm.auth(Role.AGENT))
    assert first.status_code == 201, first.text
    end(engine, firm, Role.AGENT)
    after = http.post(CALLS, json={**BODY, "sip_call_id": "after@pbx"}, headers=firm.auth(Role.AGENT))
    assert after.status_code == 401, after.text
    assert after.json() == {"detail": accounts.TOKEN_INVALID_MESSAGE}
    assert after.headers["www-authenticate"] == "Bearer"
    assert _calls(engine) == 1
    again = http.post(CALLS, json={**BODY, "sip_call_id": "again@pbx"}, headers=firm.auth(Role.AGENT))
    assert again.status_code == 401 and _calls(engine) == 1


BAD_BODIES: list[tuple[str, dict[str, str]]] = [
    ('{"direction": "SIDEWAYS", "remote_number": "0501234567"}', {"Content-Type": "application/json"}),
    ("{not json", {"Content-Type": "application/json"}),
    ("", {"Content-Type": "application/json"}),
    ("[" * 100_000, {"Content-Type": "application/json"}),
    ('{"direction": "INBOUND", "remote_number": "0501234567"}', {"Content-Type": "text/plain"}),
]


@pytest.mark.parametrize(("content", "headers"), BAD_BODIES, ids=["bad field", "not JSON", "empty", "too deep", "not JSON type"])
def test_bad_input_is_refused_as_before_and_a_bad_token_first(
    http: httpx.Client, firm: Firm, engine: Engine, content: str, headers: dict[str, str]
) -> None:
    for token_headers in ({}, {"Authorization": "Bearer wq_not-a-token-of-ours"}, {"Authorization": "Basic abc"}):
        refused = http.post(CALLS, content=content, headers={**headers, **token_headers})
        assert refused.status_code == 401, (token_headers, refused.text)
        assert set(refused.json()) == {"detail"} and isinstance(refused.json()["detail"], str)
    bad = http.post(CALLS, content=content, headers={**headers, **firm.auth(Role.AGENT)})
    assert bad.status_code in (400, 422), bad.text
    if bad.status_code == 422:
        for error in bad.json()["detail"]:
            assert set(error) == {"loc", "msg", "type"} and error["loc"][0] == "body"
    assert _calls(engine) == 0


def test_a_bad_field_is_named(http: httpx.Client, firm: Firm) -> None:
    r = http.post(CALLS, json={**BODY, "direction": "SIDEWAYS"}, headers=firm.auth(Role.AGENT))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "direction"]


def test_the_lean_route_has_a_request_id_and_one_access_line(
    http: httpx.Client, firm: Firm, caplog: pytest.LogCaptureFixture
) -> None:
    formatter = logs.JsonFormatter()
    with caplog.at_level(logging.INFO, logger="watheeq.api"):
        r = http.post(CALLS, json=BODY, headers={**firm.auth(Role.AGENT), "X-Request-ID": "lean-1"})
    assert r.status_code == 201 and r.headers["x-request-id"] == "lean-1"
    lines = [json.loads(formatter.format(rec)) for rec in caplog.records if rec.name == "watheeq.api"]
    mine = [line for line in lines if line.get("request_id") == "lean-1"]
    assert len(mine) == 1
    assert (mine[0]["method"], mine[0]["path"], mine[0]["status"]) == ("POST", CALLS, 201)
    assert firm.tokens[Role.AGENT] not in json.dumps(lines)


def test_a_lean_route_takes_only_a_token_and_a_body() -> None:
    async def with_a_query(auth: AuthorisedDep, page: int) -> dict[str, int]:
        return {}

    def not_async(auth: AuthorisedDep) -> dict[str, int]:
        return {}

    for endpoint in (with_a_query, not_async):
        with pytest.raises(TypeError):
            LeanRoute("/x", endpoint, methods=["POST"])


def test_requests_logged_in_one_group_commit_each_get_their_own_answer(
    http: httpx.Client, firm: Firm, engine: Engine, api_base_url: str
) -> None:
    """Requests that arrive together are written in one transaction (db.GroupCommit); each
    still has its token checked, and one refused request costs the others nothing."""
    import threading
    import time

    from services import db

    _revoke(engine, firm, Role.MANAGER)
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (f"ok-{n}", {**BODY, "sip_call_id": f"group-{n}@pbx"}, firm.auth(Role.AGENT)) for n in range(6)
    ]
    requests += [
        ("same-a", {**BODY, "sip_call_id": "group-same@pbx"}, firm.auth(Role.AGENT)),
        ("same-b", {**BODY, "sip_call_id": "group-same@pbx"}, firm.auth(Role.AGENT)),
        ("revoked", {**BODY, "sip_call_id": "group-revoked@pbx"}, firm.auth(Role.MANAGER)),
        ("revoked again", {**BODY, "sip_call_id": "group-revoked-2@pbx"}, firm.auth(Role.MANAGER)),
    ]
    answers: dict[str, httpx.Response] = {}

    def post(name: str, body: dict[str, str], headers: dict[str, str]) -> None:
        with httpx.Client(base_url=api_base_url, timeout=20) as client:
            answers[name] = client.post(CALLS, json=body, headers=headers)

    # Every writer busy until the requests are all queued: the first writer freed takes them as one group.
    holds = []
    for _ in range(db.group_commit.writers()):
        started, release = threading.Event(), threading.Event()
        db.group_commit.submit(lambda _s, started=started, release=release: (started.set(), release.wait(20)), lambda *_: None)
        assert started.wait(10)
        holds.append(release)
    threads = [threading.Thread(target=post, args=r) for r in requests]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while db.group_commit._queue.qsize() < len(requests) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert db.group_commit._queue.qsize() == len(requests)
    finally:
        for release in holds:
            release.set()
    for t in threads:
        t.join(20)

    assert {name: r.status_code for name, r in answers.items()} == {
        name: 401 if name.startswith("revoked") else 201 for name, *_ in requests
    }
    assert answers["revoked"].json() == answers["revoked again"].json() == {"detail": accounts.TOKEN_INVALID_MESSAGE}
    ids = [answers[f"ok-{n}"].json()["id"] for n in range(6)]
    assert len(set(ids)) == 6
    assert answers["same-a"].json()["id"] == answers["same-b"].json()["id"] not in ids
    assert all(answers[f"ok-{n}"].json()["sip_call_id"] == f"group-{n}@pbx" for n in range(6))
    # Each call once (the group that met the revoked token was rolled back, then each ran alone).
    assert _calls(engine) == 7
