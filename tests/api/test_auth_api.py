"""Sign-in, sign-out, who-am-I and what every protected route does without a valid token."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import accounts
from services.models import Role
from tests import factories
from tests.api.conftest import Firm


def _login(http: httpx.Client, email: str, password: str = factories.PASSWORD) -> httpx.Response:
    return http.post("/api/v1/auth/token", json={"email": email, "password": password})


def test_health_answers_without_a_token_and_names_no_secret(http: httpx.Client) -> None:
    r = http.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": "ok"}


def test_token_from_json_credentials_opens_the_api(http: httpx.Client, firm: Firm) -> None:
    owner = firm.users[Role.OWNER]
    r = _login(http, owner.email)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["access_token"].startswith("wtq_")
    assert body["expires_at"]
    me = http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["user_id"] == owner.id
    assert me.json()["role"] == "OWNER"
    assert me.json()["tenant"]["id"] == firm.tenant_id


def test_token_from_oauth2_password_form(http: httpx.Client, firm: Firm) -> None:
    agent = firm.users[Role.AGENT]
    r = http.post(
        "/api/v1/auth/token",
        data={"username": agent.email.upper(), "password": factories.PASSWORD, "grant_type": "password"},
    )
    assert r.status_code == 200, r.text
    me = http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert me.json()["email"] == agent.email


@pytest.mark.parametrize("password", ["wrong password", ""])
def test_wrong_password_is_401_with_a_bearer_challenge(http: httpx.Client, firm: Firm, password: str) -> None:
    r = _login(http, firm.users[Role.OWNER].email, password)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "access_token" not in r.text


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(http: httpx.Client, firm: Firm) -> None:
    unknown = _login(http, "nobody@nowhere.test")
    wrong = _login(http, firm.users[Role.OWNER].email, "wrong password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_disabled_user_cannot_sign_in(http: httpx.Client, engine: Engine) -> None:
    with Session(engine) as session:
        tenant = factories.make_tenant(session)
        user = factories.make_user(session, tenant, Role.AGENT, active=False)
        email = user.email
        session.commit()
    assert _login(http, email).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"email": "a@b.test"},
        {"password": "x"},
        {"email": 5, "password": "x"},
        {"email": "a@b.test", "password": ["x"]},
        [],
        "text",
        None,
    ],
)
def test_malformed_credentials_are_422_naming_the_field(http: httpx.Client, body: object) -> None:
    r = http.post("/api/v1/auth/token", json=body)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail and all(d["loc"][0] == "body" and d["msg"] for d in detail)


def test_invalid_json_is_422(http: httpx.Client) -> None:
    r = http.post("/api/v1/auth/token", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body"]


def test_validation_errors_do_not_echo_the_password(http: httpx.Client) -> None:
    r = http.post("/api/v1/auth/token", json={"email": ["x"], "password": "hunter2-secret"})
    assert r.status_code == 422
    assert "hunter2-secret" not in r.text


def test_repeated_failures_are_slowed_down_with_retry_after(
    http: httpx.Client, firm: Firm, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock stands still: on a loaded machine the first wait (1 s) could pass before the sixth try.
    now = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(accounts.login, "utcnow", lambda: now)
    email = firm.users[Role.MANAGER].email
    codes = [_login(http, email, "wrong password").status_code for _ in range(5)]
    assert codes == [401] * 5
    slowed = _login(http, email)
    assert slowed.status_code == 429
    assert int(slowed.headers["retry-after"]) >= 1
    # Even the right password waits: the throttle is checked before the credentials.
    assert "access_token" not in slowed.text


def test_logout_revokes_the_token(http: httpx.Client, firm: Firm) -> None:
    r = _login(http, firm.users[Role.ADMIN].email)
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert http.get("/api/v1/auth/me", headers=headers).status_code == 200
    assert http.post("/api/v1/auth/logout", headers=headers).status_code == 204
    after = http.get("/api/v1/auth/me", headers=headers)
    assert after.status_code == 401
    assert after.headers["www-authenticate"] == "Bearer"
    # The other sessions of the same firm are untouched.
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.ADMIN)).status_code == 200


def test_logout_without_a_token_is_401(http: httpx.Client) -> None:
    r = http.post("/api/v1/auth/logout")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_forty_concurrent_wrong_passwords_get_only_429_after_the_threshold(
    http: httpx.Client, firm: Firm, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock stands still so that no lock-out ends while the forty are in flight.
    now = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(accounts.login, "utcnow", lambda: now)
    email = firm.users[Role.AGENT].email
    start = threading.Barrier(40)

    def attempt(_: int) -> int:
        start.wait()
        return _login(http, email, "wrong password").status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(attempt, range(40)))
    free = accounts.EMAIL_THROTTLE.free_attempts
    assert sorted(codes) == [401] * free + [429] * (40 - free)
    # The right password is refused too while the lock-out lasts, then accepted after it.
    assert _login(http, email).status_code == 429
    now += timedelta(seconds=1)
    assert _login(http, email).status_code == 200


def test_throttle_answer_says_when_to_retry_and_is_documented(
    http: httpx.Client, firm: Firm, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clock stands still: under load the first lock-out (1 s) could end before the last try.
    now = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(accounts.login, "utcnow", lambda: now)
    email = firm.users[Role.AGENT].email
    for _ in range(accounts.EMAIL_THROTTLE.free_attempts):
        _login(http, email, "wrong password")
    r = _login(http, email, "wrong password")
    assert r.status_code == 429
    assert r.json() == {"detail": accounts.TOO_MANY_ATTEMPTS_MESSAGE}
    assert 1 <= int(r.headers["retry-after"]) <= 60
    spec = http.get("/api/v1/openapi.json").json()
    assert {"401", "429"} <= set(spec["paths"]["/api/v1/auth/token"]["post"]["responses"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_own_password_change_keeps_this_token_and_ends_the_others(http: httpx.Client, firm: Firm) -> None:
    email = firm.users[Role.MANAGER].email
    here, elsewhere = (_login(http, email).json()["access_token"] for _ in range(2))
    wrong = http.post("/api/v1/auth/password", headers=_bearer(here),
                      json={"current_password": "not mine", "new_password": "a new passphrase"})
    assert wrong.status_code == 422
    assert wrong.json()["detail"][0]["loc"] == ["body", "current_password"]
    short = http.post("/api/v1/auth/password", headers=_bearer(here),
                      json={"current_password": factories.PASSWORD, "new_password": "short"})
    assert short.status_code == 422 and short.json()["detail"][0]["loc"] == ["body", "new_password"]
    r = http.post("/api/v1/auth/password", headers=_bearer(here),
                  json={"current_password": factories.PASSWORD, "new_password": "a new passphrase"})
    assert r.status_code == 200 and r.json()["sessions_ended"] == 2  # the other login and the fixture's token
    assert http.get("/api/v1/auth/me", headers=_bearer(here)).status_code == 200
    assert http.get("/api/v1/auth/me", headers=_bearer(elsewhere)).status_code == 401
    assert _login(http, email).status_code == 401
    assert _login(http, email, "a new passphrase").status_code == 200


def test_logout_everywhere_ends_every_session_of_the_caller_only(http: httpx.Client, firm: Firm) -> None:
    email = firm.users[Role.AGENT].email
    mine = _login(http, email).json()["access_token"]
    r = http.post("/api/v1/auth/logout-everywhere", headers=_bearer(mine))
    assert r.status_code == 200 and r.json()["sessions_ended"] == 2
    assert http.get("/api/v1/auth/me", headers=_bearer(mine)).status_code == 401
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.AGENT)).status_code == 401
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.MANAGER)).status_code == 200
