"""The firm's users over the API: who may list, add, change, disable and reset whom."""

from __future__ import annotations

import httpx
import pytest

from services import accounts, db
from services.errors import Invalid
from services.models import Role, UserBase
from services.models.base import max_length
from tests import factories
from tests.api.conftest import Firm


def _login(http: httpx.Client, email: str, password: str = factories.PASSWORD) -> httpx.Response:
    return http.post("/api/v1/auth/token", json={"email": email, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owners_and_admins_list_the_firms_users(http: httpx.Client, firm: Firm, rival: Firm, role: Role) -> None:
    assert _login(http, firm.users[Role.AGENT].email).status_code == 200
    r = http.get("/api/v1/users", headers=firm.auth(role))
    assert r.status_code == 200
    users = {u["email"]: u for u in r.json()}
    assert set(users) == {u.email for u in firm.users.values()}
    agent = users[firm.users[Role.AGENT].email]
    assert agent["last_sign_in_at"] and agent["extension"] is None and agent["active"] is True
    assert "password_hash" not in r.text


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_managers_and_agents_get_403_on_every_users_route(http: httpx.Client, firm: Firm, role: Role) -> None:
    target = firm.user_id(Role.AGENT if role is Role.MANAGER else Role.MANAGER)
    for method, url, body in [
        ("GET", "/api/v1/users", None),
        ("POST", "/api/v1/users", {"email": "x@alpha.test", "role": "AGENT"}),
        ("GET", f"/api/v1/users/{target}", None),
        ("PATCH", f"/api/v1/users/{target}", {"role": "OWNER"}),
        ("POST", f"/api/v1/users/{target}/password-reset", {"password": "a new passphrase"}),
    ]:
        r = http.request(method, url, json=body, headers=firm.auth(role))
        assert r.status_code == 403, (method, url, r.text)
    assert http.get("/api/v1/users", headers=firm.auth(Role.OWNER)).json()[-1]["email"] != "x@alpha.test"


def test_a_user_added_with_a_link_sets_a_password_once_and_signs_in(http: httpx.Client, firm: Firm) -> None:
    r = http.post("/api/v1/users", headers=firm.auth(Role.ADMIN),
                  json={"email": "New.Agent@Alpha.test", "full_name": "New Agent", "role": "AGENT"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["email"] == "new.agent@alpha.test"
    link = body["password_link"]
    assert link["path"] == f"/set-password?token={link['token']}" and link["expires_at"]
    assert _login(http, "new.agent@alpha.test", "").status_code == 401
    done = http.post("/api/v1/auth/set-password", json={"token": link["token"], "password": "my own passphrase"})
    assert done.status_code == 200 and done.json() == {"email": "new.agent@alpha.test"}
    again = http.post("/api/v1/auth/set-password", json={"token": link["token"], "password": "another passphrase"})
    assert again.status_code == 422 and again.json()["detail"][0]["loc"] == ["body", "token"]
    assert _login(http, "new.agent@alpha.test", "my own passphrase").status_code == 200


def test_a_user_added_with_a_password_signs_in_at_once(http: httpx.Client, firm: Firm) -> None:
    r = http.post("/api/v1/users", headers=firm.auth(Role.OWNER),
                  json={"email": "direct@alpha.test", "role": "MANAGER", "password": "a given passphrase"})
    assert r.status_code == 201 and r.json()["password_link"] is None
    assert "a given passphrase" not in r.text
    assert _login(http, "direct@alpha.test", "a given passphrase").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "role": "AGENT"}, "email"),
        ({"email": "ok@alpha.test", "role": "KING"}, "role"),
        ({"email": "ok@alpha.test", "role": "AGENT", "password": "short"}, "password"),
        ({"email": "ok@alpha.test"}, "role"),
        ({"email": "ok@alpha.test", "role": "AGENT", "is_superuser": True}, "is_superuser"),
    ],
)
def test_bad_new_user_is_422_naming_the_field(http: httpx.Client, firm: Firm, body: dict, field: str) -> None:
    r = http.post("/api/v1/users", headers=firm.auth(Role.ADMIN), json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == field and r.json()["detail"][0]["msg"]
    assert "ok@alpha.test" not in http.get("/api/v1/users", headers=firm.auth()).text


def test_a_taken_email_is_409_even_in_another_firm(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    r = http.post("/api/v1/users", headers=firm.auth(Role.ADMIN),
                  json={"email": rival.users[Role.AGENT].email, "role": "AGENT"})
    assert r.status_code == 409 and r.json()["field"] == "email"


def test_another_firms_user_is_404_and_unchanged(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    target = rival.user_id(Role.AGENT)
    for method, url, body in [
        ("GET", f"/api/v1/users/{target}", None),
        ("PATCH", f"/api/v1/users/{target}", {"active": False}),
        ("POST", f"/api/v1/users/{target}/password-reset", {"password": "a new passphrase"}),
    ]:
        r = http.request(method, url, json=body, headers=firm.auth(Role.OWNER))
        assert r.status_code == 404, (method, url, r.text)
    assert http.get("/api/v1/auth/me", headers=rival.auth(Role.AGENT)).status_code == 200
    assert _login(http, rival.users[Role.AGENT].email).status_code == 200


def test_an_admin_may_not_make_change_or_reset_an_owner(http: httpx.Client, firm: Firm) -> None:
    admin, owner = firm.auth(Role.ADMIN), firm.user_id(Role.OWNER)
    assert http.patch(f"/api/v1/users/{firm.user_id(Role.AGENT)}", json={"role": "OWNER"}, headers=admin).status_code == 403
    assert http.patch(f"/api/v1/users/{owner}", json={"role": "AGENT"}, headers=admin).status_code == 403
    assert http.patch(f"/api/v1/users/{owner}", json={"active": False}, headers=admin).status_code == 403
    assert http.post(f"/api/v1/users/{owner}/password-reset", json={}, headers=admin).status_code == 403
    assert http.post("/api/v1/users", json={"email": "o2@alpha.test", "role": "OWNER"}, headers=admin).status_code == 403
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.OWNER)).json()["role"] == "OWNER"


def test_nobody_demotes_or_disables_themself(http: httpx.Client, firm: Firm) -> None:
    me = firm.user_id(Role.OWNER)
    for body, field in (({"role": "ADMIN"}, "role"), ({"active": False}, "active")):
        r = http.patch(f"/api/v1/users/{me}", json=body, headers=firm.auth(Role.OWNER))
        assert r.status_code == 409 and r.json()["field"] == field


def test_role_change_takes_effect_on_the_users_next_request(http: httpx.Client, firm: Firm) -> None:
    agent = firm.user_id(Role.AGENT)
    r = http.patch(f"/api/v1/users/{agent}", json={"role": "ADMIN", "full_name": "Promoted"}, headers=firm.auth(Role.OWNER))
    assert r.status_code == 200 and (r.json()["role"], r.json()["full_name"]) == ("ADMIN", "Promoted")
    assert http.get("/api/v1/users", headers=firm.auth(Role.AGENT)).status_code == 200
    bad = http.patch(f"/api/v1/users/{agent}", json={"role": "KING"}, headers=firm.auth(Role.OWNER))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "role"]


def test_disabling_a_user_ends_their_token_and_their_sign_in_says_disabled(http: httpx.Client, firm: Firm) -> None:
    agent = firm.users[Role.AGENT]
    r = http.patch(f"/api/v1/users/{agent.id}", json={"active": False}, headers=firm.auth(Role.ADMIN))
    assert r.status_code == 200 and r.json()["active"] is False
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.AGENT)).status_code == 401
    refused = _login(http, agent.email)
    assert refused.status_code == 401 and refused.json()["detail"] == "this account is disabled"
    assert http.patch(f"/api/v1/users/{agent.id}", json={"active": True}, headers=firm.auth(Role.ADMIN)).status_code == 200
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.AGENT)).status_code == 401  # no token comes back
    assert _login(http, agent.email).status_code == 200


def test_password_reset_with_a_password_or_a_link(http: httpx.Client, firm: Firm) -> None:
    manager = firm.users[Role.MANAGER]
    r = http.post(f"/api/v1/users/{manager.id}/password-reset", json={"password": "reset passphrase"}, headers=firm.auth(Role.ADMIN))
    assert r.status_code == 200 and r.json() == {"password_link": None}
    assert http.get("/api/v1/auth/me", headers=firm.auth(Role.MANAGER)).status_code == 401
    assert _login(http, manager.email, "reset passphrase").status_code == 200
    r = http.post(f"/api/v1/users/{manager.id}/password-reset", json={}, headers=firm.auth(Role.ADMIN))
    token = r.json()["password_link"]["token"]
    assert _login(http, manager.email, "reset passphrase").status_code == 401
    assert http.post("/api/v1/auth/set-password", json={"token": token, "password": "linked passphrase"}).status_code == 200
    assert _login(http, manager.email, "linked passphrase").status_code == 200


def test_users_routes_document_their_refusals(http: httpx.Client) -> None:
    paths = http.get("/api/v1/openapi.json").json()["paths"]
    assert {"201", "401", "403", "409", "422"} <= set(paths["/api/v1/users"]["post"]["responses"])
    assert {"401", "403", "404", "409", "422"} <= set(paths["/api/v1/users/{user_id}"]["patch"]["responses"])
    assert {"403", "404", "409"} <= set(paths["/api/v1/users/{user_id}/password-reset"]["post"]["responses"])
    assert {"401", "422", "429"} <= set(paths["/api/v1/auth/password"]["post"]["responses"])


def test_a_name_past_the_users_declared_limit_is_refused_alike_by_the_api_and_the_service(
    http: httpx.Client, firm: Firm
) -> None:
    limit = max_length(UserBase, "full_name")
    too_long = {"loc": ["body", "full_name"], "msg": f"a name is at most {limit} characters", "type": "value_error"}
    r = http.post("/api/v1/users", json={"email": "long@alpha.test", "role": "AGENT", "full_name": "n" * (limit + 1)}, headers=firm.auth())
    assert (r.status_code, r.json()["detail"]) == (422, [too_long])
    target = firm.user_id(Role.AGENT)
    r = http.patch(f"/api/v1/users/{target}", json={"full_name": "n" * (limit + 1)}, headers=firm.auth())
    assert (r.status_code, r.json()["detail"]) == (422, [too_long])
    # The dashboard calls the service with the raw value: the same sentence, from the same limit.
    with db.session_scope() as session, pytest.raises(Invalid) as err:
        accounts.update_user(
            session=session, tenant_id=firm.tenant_id, actor=factories.principal_of(firm.users[Role.OWNER]), user_id=target, full_name="n" * (limit + 1)
        )
    assert (err.value.field, err.value.message) == ("full_name", too_long["msg"])
    assert all(u["email"] != "long@alpha.test" for u in http.get("/api/v1/users", headers=firm.auth()).json())
