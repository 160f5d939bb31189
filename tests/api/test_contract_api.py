"""Properties of every route at once, driven by the published OpenAPI document.

* every route but health and sign-in refuses a missing, malformed, expired or revoked token;
* no request a client can make gets a 5xx (malformed JSON, wrong types, huge numbers,
  unknown enum values, bad dates, NUL characters);
* another firm's ids are not found, and trying them changes nothing;
* the SIP password appears in one answer only: its own user's softphone config.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import accounts
from services.models import Role
from tests import factories
from tests.api.conftest import Firm

PUBLIC_ROUTES = {("GET", "/api/v1/health"), ("GET", "/api/v1/ready"), ("POST", "/api/v1/auth/token"), ("POST", "/api/v1/auth/set-password")}
SIP_PASSWORD = "Sip-Pass-Never-Leaks"
TURN_SECRET = "Turn-Secret-Never-Leaks"


@pytest.fixture(scope="module")
def spec(api_base_url: str) -> dict[str, Any]:
    r = httpx.get(f"{api_base_url}/api/v1/openapi.json")
    assert r.status_code == 200
    return r.json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            yield method.upper(), path, op


def test_openapi_and_docs_are_served_under_api_v1(http: httpx.Client, spec: dict[str, Any]) -> None:
    assert http.get("/api/v1/docs").status_code == 200
    paths = set(spec["paths"])
    for expected in (
        "/api/v1/call-center/extension",
        "/api/v1/call-center/extensions",
        "/api/v1/call-center/extension/{extension_id}",
        "/api/v1/call-center/calls",
        "/api/v1/call-center/calls/{call_id}",
        "/api/v1/call-center/stats",
        "/api/v1/whatsapp/qr/connect",
        "/api/v1/whatsapp/qr/disconnect",
        "/api/v1/whatsapp/qr/status",
        "/api/v1/whatsapp/qr/send",
        "/api/v1/whatsapp/qr/messages",
        "/api/v1/clients",
        "/api/v1/auth/token",
        "/api/v1/auth/password",
        "/api/v1/auth/logout-everywhere",
        "/api/v1/auth/set-password",
        "/api/v1/users",
        "/api/v1/users/{user_id}",
        "/api/v1/users/{user_id}/password-reset",
    ):
        assert expected in paths
    assert all(p.startswith("/api/v1/") for p in paths)


def _concrete(path: str) -> str:
    return (
        path.replace("{extension_id}", "1").replace("{call_id}", "1").replace("{client_id}", "1").replace("{user_id}", "1")
        .replace("{recording_id}", "1").replace("{case_id}", "1").replace("{message_id}", "1").replace("{dead_letter_id}", "1")
        .replace("{case_file_id}", "1")
    )


@pytest.fixture
def revoked_token(engine: Engine, firm: Firm) -> str:
    with Session(engine) as session:
        principal = factories.principal_of(firm.users[Role.OWNER])
        token = accounts.issue_token(session=session, principal=principal)
        accounts.revoke_token(session=session, token=token)
        session.commit()
    return token


def test_every_protected_route_refuses_a_missing_or_bad_token(
    http: httpx.Client, spec: dict[str, Any], expired_token: str, revoked_token: str
) -> None:
    credentials: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer wtq_not-a-real-token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {expired_token}"},
        {"Authorization": f"Bearer {revoked_token}"},
    ]
    checked = 0
    for method, path, _ in _operations(spec):
        if (method, path) in PUBLIC_ROUTES:
            continue
        for headers in credentials:
            r = http.request(method, _concrete(path), headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            checked += 1
        assert "401" in spec["paths"][path][method.lower()]["responses"], (method, path)
    assert checked >= 17 * len(credentials)


def test_every_role_gets_only_answers_the_openapi_documents(
    http: httpx.Client, spec: dict[str, Any], deep_firm: Firm
) -> None:
    undocumented: set[tuple[str, str, str, int]] = set()
    for role in (Role.AGENT, Role.MANAGER, Role.ADMIN, Role.OWNER):
        for method, path, _ in _operations(spec):
            if (method, path) == ("POST", "/api/v1/auth/logout"):
                continue
            r = http.request(method, _concrete(path), headers=deep_firm.auth(role), json={})
            if str(r.status_code) not in spec["paths"][path][method.lower()]["responses"]:
                undocumented.add((role.value, method, path, r.status_code))
    assert sorted(undocumented) == [], "\n".join(map(str, sorted(undocumented)))


# --------------------------------------------------------------------------- fuzzing


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


# The edges of what a datetime can represent: converting them to UTC overflows.
EDGE_DATES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]
WEIRD_VALUES: list[Any] = [
    None,
    "",
    "\x00",
    "x" * 5000,
    "9999-99-99T99:99:99",
    *EDGE_DATES,
    -1,
    0,
    2**31,
    2**63,
    -(2**100),
    10**400,
    1.5,
    True,
    [],
    {},
    ["\x00"],
    {"urls": None},
]
RAW_BODIES: list[bytes] = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"text"',
    b"1e999",
    b'{"a":' * 50 + b"1" + b"}" * 50,
    b"\xff\xfe",
    # Nested past any recursion limit: a parser that recurses would take the worker down.
    b"[" * 100_000,
    b'{"a":' * 5_000 + b"1" + b"}" * 5_000,
]
WEIRD_PARAMS = ["", "\x00", "-1", "0", "abc", "99999999999999999999999", "2025-02-30", "1e999", "NaN", "%", "_", "\\", *EDGE_DATES]
WEIRD_IDS = ["0", "-1", "abc", "99999999999999999999", "2147483648", "1.5", "%00"]


def _bodies(spec: dict[str, Any], op: dict[str, Any]) -> Iterator[dict[str, Any]]:
    content = op.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if not schema:
        return
    props = _resolve(spec, schema).get("properties", {})
    for name in props:
        for value in WEIRD_VALUES:
            yield {name: value}
    # Every field weird at once, then each weird value everywhere.
    yield {name: 10**30 for name in props}
    yield {name: "\x00" for name in props}
    yield {name: [None] for name in props}


@pytest.fixture
def deep_firm(http: httpx.Client, firm: Firm) -> Firm:
    """A firm with PBX settings, an extension and a call, so fuzzed requests reach the services."""
    owner = firm.auth(Role.OWNER)
    pbx = {"host": "pbx.alpha.test", "ice_servers": [{"urls": "turn:turn.alpha.test"}], "turn_credential": TURN_SECRET}
    assert http.put("/api/v1/call-center/pbx-settings", json=pbx, headers=owner).status_code == 200
    ext = {"user_id": firm.user_id(Role.OWNER), "extension": "100", "password": SIP_PASSWORD}
    assert http.post("/api/v1/call-center/extension", json=ext, headers=owner).status_code == 200
    call = http.post("/api/v1/call-center/calls", json={"direction": "INBOUND", "remote_number": "0501234567"}, headers=owner)
    assert call.status_code == 201
    return firm


def _fuzz(http: httpx.Client, spec: dict[str, Any], headers: dict[str, str]) -> Iterator[tuple[str, str, httpx.Response]]:
    """Every weird request for every operation: (method, documented path, response)."""

    def send(method: str, path: str, url: str, **kwargs: Any) -> tuple[str, str, httpx.Response]:
        r = http.request(method, url, headers={**headers, **kwargs.pop("headers", {})}, **kwargs)
        return method, path, r

    for method, path, op in _operations(spec):
        if (method, path) in {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/logout-everywhere")}:
            continue  # would end the session the rest of the fuzzing uses
        url = _concrete(path)
        if "{" in path:
            for bad_id in WEIRD_IDS:
                # Only the id segment is weird: a route's suffix after it (…/{id}/password-reset) stays.
                yield send(method, path, re.sub(r"\{[^}]+\}", bad_id, path, count=1), json={})
        for raw in RAW_BODIES:
            yield send(method, path, url, content=raw, headers={"content-type": "application/json"})
        for body in _bodies(spec, op):
            yield send(method, path, url, json=body)
        for param, value in itertools.product(
            [p["name"] for p in op.get("parameters", []) if p["in"] == "query"], WEIRD_PARAMS
        ):
            yield send(method, path, url, params={param: value})


def test_nothing_a_client_sends_gets_a_server_error_and_every_answer_is_documented(
    http: httpx.Client, spec: dict[str, Any], deep_firm: Firm
) -> None:
    server_errors: list[tuple[str, str, int, str]] = []
    undocumented: set[tuple[str, str, int]] = set()
    sent = 0
    for method, path, r in _fuzz(http, spec, deep_firm.auth(Role.OWNER)):
        sent += 1
        # /ready's 503 is its answer ("not ready": this test's schema is made by create_all,
        # not the migrations), not a server error; test_ready_api.py covers it.
        if r.status_code >= 500 and not (path == "/api/v1/ready" and r.status_code == 503):
            server_errors.append((method, path, r.status_code, r.text[:200]))
        if str(r.status_code) not in spec["paths"][path][method.lower()]["responses"]:
            undocumented.add((method, path, r.status_code))
        # The caller's own softphone config is the one answer that carries its secrets.
        if not (method == "GET" and path.endswith("/call-center/extension")):
            assert SIP_PASSWORD not in r.text, (method, path)
            assert TURN_SECRET not in r.text, (method, path)
    assert sent > 500
    assert server_errors == []
    assert sorted(undocumented) == [], "\n".join(map(str, sorted(undocumented)))


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 100_000 + b"]" * 100_000])
def test_deeply_nested_json_is_refused_and_the_server_goes_on(http: httpx.Client, firm: Firm, body: bytes) -> None:
    json_type = {"content-type": "application/json"}
    sign_in = http.post("/api/v1/auth/token", content=body, headers=json_type)
    assert sign_in.status_code == 422, sign_in.text
    assert sign_in.json()["detail"][0]["loc"] == ["body"]
    create = http.post("/api/v1/clients", content=body, headers={**json_type, **firm.auth()})
    assert create.status_code in (400, 422), create.text
    assert http.get("/api/v1/health").status_code == 200


def test_sign_in_survives_malformed_forms_and_bodies(http: httpx.Client) -> None:
    for kwargs in (
        {"data": {"username": "\x00", "password": "\x00"}},
        {"data": {"username": "a" * 10_000, "password": "b" * 10_000}},
        {"files": {"username": ("a.txt", b"file"), "password": ("b.txt", b"file")}},
        {"content": b"\xff\xfe", "headers": {"content-type": "application/json"}},
        {"content": b"username=%FF&password=%00", "headers": {"content-type": "application/x-www-form-urlencoded"}},
        {"content": b"--x\r\n", "headers": {"content-type": "multipart/form-data; boundary=x"}},
    ):
        r = http.post("/api/v1/auth/token", **kwargs)  # type: ignore[arg-type]
        assert r.status_code in (401, 422), (kwargs, r.status_code, r.text)


# --------------------------------------------------------------------------- tenant isolation


def _state_of(http: httpx.Client, firm: Firm) -> dict[str, Any]:
    """Everything of ``firm`` the API shows its owner."""
    owner = firm.auth(Role.OWNER)
    state = {
        "clients": http.get("/api/v1/clients", headers=owner).json(),
        "calls": http.get("/api/v1/call-center/calls", headers=owner).json(),
        "extensions": http.get("/api/v1/call-center/extensions", headers=owner).json(),
        "pbx": http.get("/api/v1/call-center/pbx-settings", headers=owner).json(),
        "case_of_client": http.get(f"/api/v1/clients/{firm.client.id}/cases", headers=owner).json(),
    }
    state["call_details"] = [
        http.get(f"/api/v1/call-center/calls/{c['id']}", headers=owner).json() for c in state["calls"]["data"]
    ]
    return state


def test_another_firms_ids_are_not_found_and_nothing_changes(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    r_owner = rival.auth(Role.OWNER)
    pbx = {"host": "pbx.beta.test"}
    assert http.put("/api/v1/call-center/pbx-settings", json=pbx, headers=r_owner).status_code == 200
    r_ext = http.post(
        "/api/v1/call-center/extension",
        json={"user_id": rival.user_id(Role.AGENT), "extension": "700", "password": SIP_PASSWORD},
        headers=r_owner,
    ).json()
    r_call = http.post(
        "/api/v1/call-center/calls", json={"direction": "INBOUND", "remote_number": "0501234567"}, headers=r_owner
    ).json()
    assert r_call["client_id"] == rival.client.id
    before = _state_of(http, rival)

    for role in (Role.OWNER, Role.ADMIN, Role.MANAGER, Role.AGENT):
        me = firm.auth(role)
        attempts = [
            ("GET", f"/api/v1/clients/{rival.client.id}", None),
            ("GET", f"/api/v1/clients/{rival.client.id}/cases", None),
            ("GET", f"/api/v1/call-center/calls/{r_call['id']}", None),
            ("PATCH", f"/api/v1/call-center/calls/{r_call['id']}", {"status": "ANSWERED", "note": "hijack"}),
            ("PATCH", f"/api/v1/call-center/calls/{r_call['id']}", {"case_id": rival.case.id}),
        ]
        if role in (Role.OWNER, Role.ADMIN):
            attempts += [
                ("DELETE", f"/api/v1/call-center/extension/{r_ext['id']}", None),
                (
                    "POST",
                    "/api/v1/call-center/extension",
                    {"user_id": rival.user_id(Role.MANAGER), "extension": "701", "password": SIP_PASSWORD},
                ),
            ]
        for method, url, body in attempts:
            r = http.request(method, url, json=body, headers=me)
            assert r.status_code == 404, (role, method, url, r.status_code, r.text)
            assert SIP_PASSWORD not in r.text

        # Filters naming the other firm's ids find nothing of it.
        for params in ({"client_id": rival.client.id}, {"agent_user_id": rival.user_id(Role.AGENT)}):
            listing = http.get("/api/v1/call-center/calls", params=params, headers=me).json()
            assert listing["data"] == [] and listing["count"] == 0

    # The lists of the firm never show the rival's rows, although both share a number.
    mine = _state_of(http, firm)
    assert rival.client.id not in {c["id"] for c in mine["clients"]["data"]}
    assert mine["calls"]["count"] == 0
    assert mine["extensions"] == []
    assert http.get("/api/v1/call-center/stats", headers=firm.auth()).json()["total"] == 0

    assert _state_of(http, rival) == before


def test_another_firms_client_cannot_be_messaged_nor_its_messages_listed(http: httpx.Client, firm: Firm, rival: Firm) -> None:
    r = http.post("/api/v1/whatsapp/qr/send", json={"client_id": rival.client.id, "body": "hi"}, headers=firm.auth())
    assert r.status_code == 404
    listing = http.get("/api/v1/whatsapp/qr/messages", params={"client_id": rival.client.id}, headers=firm.auth())
    assert listing.status_code == 404
