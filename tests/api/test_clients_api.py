"""The client directory over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.models import ClientBase, Role
from services.models.base import max_length, too_long
from tests.api.conftest import ROLES, Firm

CLIENTS = "/api/v1/clients"


@pytest.mark.parametrize("role", ROLES)
def test_every_role_adds_and_finds_clients(http: httpx.Client, firm: Firm, role: Role) -> None:
    r = http.post(CLIENTS, json={"name": "Noura Al-Harbi", "phone": "00966 55 111 2222", "email": "Noura@Example.test"}, headers=firm.auth(role))
    assert r.status_code == 201, r.text
    client = r.json()
    assert client["phone_e164"] == "+966551112222"
    assert client["email"] == "noura@example.test"
    assert http.get(f"{CLIENTS}/{client['id']}", headers=firm.auth(role)).json() == client
    by_name = http.get(CLIENTS, params={"search": "noura"}, headers=firm.auth(role)).json()
    assert [c["id"] for c in by_name["data"]] == [client["id"]]
    by_number = http.get(CLIENTS, params={"search": "0551112222"}, headers=firm.auth(role)).json()
    assert [c["id"] for c in by_number["data"]] == [client["id"]]


def test_listing_pages_with_limit_and_offset(http: httpx.Client, firm: Firm) -> None:
    first = http.get(CLIENTS, params={"limit": 1}, headers=firm.auth()).json()
    second = http.get(CLIENTS, params={"limit": 1, "offset": 1}, headers=firm.auth()).json()
    assert first["count"] == second["count"] == 2
    assert len(first["data"]) == len(second["data"]) == 1
    assert first["data"][0]["id"] != second["data"][0]["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "A", "phone": "not a number"}, "phone"),
        ({"name": "A", "email": "nope"}, "email"),
        ({"phone": "0501234567"}, "name"),
        ({"name": ["A"]}, "name"),
    ],
)
def test_bad_client_input_is_422_and_adds_nothing(
    http: httpx.Client, firm: Firm, body: dict[str, Any], field: str
) -> None:
    r = http.post(CLIENTS, json=body, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert http.get(CLIENTS, headers=firm.auth()).json()["count"] == 2


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 10_000}, {"offset": -1}, {"limit": "many"}])
def test_bad_listing_queries_are_422(http: httpx.Client, firm: Firm, params: dict[str, Any]) -> None:
    r = http.get(CLIENTS, params=params, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_cases_of_a_client(http: httpx.Client, firm: Firm) -> None:
    r = http.get(f"{CLIENTS}/{firm.client.id}/cases", headers=firm.auth(Role.AGENT))
    assert r.status_code == 200
    assert [c["id"] for c in r.json()] == [firm.case.id]
    assert http.get(f"{CLIENTS}/{firm.other_client.id}/cases", headers=firm.auth()).json() == []


def test_unknown_client_is_404(http: httpx.Client, firm: Firm) -> None:
    assert http.get(f"{CLIENTS}/424242", headers=firm.auth()).status_code == 404
    assert http.get(f"{CLIENTS}/424242/cases", headers=firm.auth()).status_code == 404


def test_a_name_past_the_declared_limit_reads_as_the_dashboard_says_it(http: httpx.Client, firm: Firm) -> None:
    # One declaration (ClientBase) gives the column size, the documented maxLength and the
    # refusal, which is the same sentence on the API as under the dashboard's field.
    limit = max_length(ClientBase, "name")
    spec = http.get("/api/v1/openapi.json").json()
    assert spec["components"]["schemas"]["ClientCreate"]["properties"]["name"]["maxLength"] == limit
    r = http.post(CLIENTS, json={"name": "x" * (limit + 1)}, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body", "name"], "msg": too_long(ClientBase, "name"), "type": "value_error"}]
    assert too_long(ClientBase, "name") == f"a client name is at most {limit} characters"
    assert http.post(CLIENTS, json={"name": "x" * limit}, headers=firm.auth()).status_code == 201
