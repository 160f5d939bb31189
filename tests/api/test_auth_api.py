"""Sign-in, sign-out, who-am-I and what every protected route does without a valid token."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

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


def test_repeated_failures_are_slowed_down_with_retry_after(http: httpx.Client, firm: Firm) -> None:
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
