"""SIP extensions and PBX settings over HTTP: roles, conflicts, and where the password may appear."""

from __future__ import annotations

import httpx
import pytest

from services.models import Role
from tests.api.conftest import Firm

SIP_PASSWORD = "s1p-Secret-Pass"
TURN_SECRET = "turn-Secret-Value"
PBX = {
    "host": "pbx.alpha.test",
    "wss_port": 8089,
    "wss_path": "/ws",
    "ice_servers": [{"urls": "stun:stun.alpha.test:3478"}, {"urls": ["turn:turn.alpha.test:3478"], "username": "u"}],
    "turn_credential": TURN_SECRET,
}


def _configure_pbx(http: httpx.Client, firm: Firm) -> None:
    r = http.put("/api/v1/call-center/pbx-settings", json=PBX, headers=firm.auth(Role.ADMIN))
    assert r.status_code == 200, r.text


def _assign(http: httpx.Client, firm: Firm, role: Role, number: str, *, by: Role = Role.ADMIN) -> httpx.Response:
    body = {"user_id": firm.user_id(role), "extension": number, "password": SIP_PASSWORD}
    return http.post("/api/v1/call-center/extension", json=body, headers=firm.auth(by))


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_owner_and_admin_assign_an_extension(http: httpx.Client, firm: Firm, role: Role) -> None:
    _configure_pbx(http, firm)
    r = _assign(http, firm, Role.AGENT, "101", by=role)
    assert r.status_code == 200, r.text
    ext = r.json()
    assert ext["extension"] == "101"
    assert ext["user_id"] == firm.user_id(Role.AGENT)
    assert ext["sip_uri"] == "sip:101@pbx.alpha.test"
    assert SIP_PASSWORD not in r.text and "password" not in ext


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_manager_and_agent_may_not_assign_extensions(http: httpx.Client, firm: Firm, role: Role) -> None:
    r = _assign(http, firm, role, "102", by=role)
    assert r.status_code == 403
    listing = http.get("/api/v1/call-center/extensions", headers=firm.auth(Role.OWNER)).json()
    assert listing == []


def test_duplicate_extension_number_is_409_naming_the_field(http: httpx.Client, firm: Firm) -> None:
    assert _assign(http, firm, Role.AGENT, "200").status_code == 200
    r = _assign(http, firm, Role.MANAGER, "200")
    assert r.status_code == 409
    assert r.json()["field"] == "extension"
    assert SIP_PASSWORD not in r.text


def test_changing_an_extension_keeps_the_password_when_omitted(http: httpx.Client, firm: Firm) -> None:
    _configure_pbx(http, firm)
    assert _assign(http, firm, Role.AGENT, "300").status_code == 200
    change = {"user_id": firm.user_id(Role.AGENT), "extension": "301", "display_name": "Front desk"}
    r = http.post("/api/v1/call-center/extension", json=change, headers=firm.auth(Role.OWNER))
    assert r.status_code == 200, r.text
    mine = http.get("/api/v1/call-center/extension", headers=firm.auth(Role.AGENT)).json()
    assert mine["extension"] == "301"
    assert mine["display_name"] == "Front desk"
    assert mine["password"] == SIP_PASSWORD


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"extension": "abc", "password": SIP_PASSWORD}, "extension"),
        ({"extension": "401"}, "password"),
        ({"extension": "401", "password": "short"}, "password"),
        ({"extension": "401", "password": SIP_PASSWORD, "display_name": "x" * 101}, "display_name"),
    ],
)
def test_bad_extension_input_is_422_with_field_and_reason(
    http: httpx.Client, firm: Firm, body: dict[str, object], field: str
) -> None:
    r = http.post(
        "/api/v1/call-center/extension", json={"user_id": firm.user_id(Role.AGENT), **body}, headers=firm.auth()
    )
    assert r.status_code == 422
    (detail,) = r.json()["detail"]
    assert detail["loc"] == ["body", field]
    assert detail["msg"] and detail["type"] == "value_error"
    assert SIP_PASSWORD not in r.text


@pytest.mark.parametrize("user_id", [0, -1, 2**31, 2**70, "seven", None])
def test_out_of_range_user_ids_are_422(http: httpx.Client, firm: Firm, user_id: object) -> None:
    body = {"user_id": user_id, "extension": "501", "password": SIP_PASSWORD}
    r = http.post("/api/v1/call-center/extension", json=body, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "user_id"]


def test_own_extension_carries_the_password_only_for_its_user(http: httpx.Client, firm: Firm) -> None:
    _configure_pbx(http, firm)
    assert _assign(http, firm, Role.AGENT, "110").status_code == 200
    r = http.get("/api/v1/call-center/extension", headers=firm.auth(Role.AGENT))
    assert r.status_code == 200
    cfg = r.json()
    assert cfg["password"] == SIP_PASSWORD
    assert cfg["wss_url"] == "wss://pbx.alpha.test:8089/ws"
    assert cfg["sip_uri"] == "sip:110@pbx.alpha.test"
    turn = next(s for s in cfg["ice_servers"] if s["urls"] == ["turn:turn.alpha.test:3478"])
    assert turn["credential"] == TURN_SECRET
    # The owner asking for "the extension" gets their own (none), never the agent's.
    owner = http.get("/api/v1/call-center/extension", headers=firm.auth(Role.OWNER))
    assert owner.status_code == 404
    assert SIP_PASSWORD not in owner.text


def test_own_extension_before_the_pbx_is_configured_is_409(http: httpx.Client, firm: Firm) -> None:
    assert _assign(http, firm, Role.AGENT, "120").status_code == 200
    r = http.get("/api/v1/call-center/extension", headers=firm.auth(Role.AGENT))
    assert r.status_code == 409
    assert SIP_PASSWORD not in r.text


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MANAGER])
def test_supervisors_list_extensions_without_passwords(http: httpx.Client, firm: Firm, role: Role) -> None:
    _configure_pbx(http, firm)
    _assign(http, firm, Role.AGENT, "130")
    _assign(http, firm, Role.MANAGER, "131")
    r = http.get("/api/v1/call-center/extensions", headers=firm.auth(role))
    assert r.status_code == 200
    assert [e["extension"] for e in r.json()] == ["130", "131"]
    assert SIP_PASSWORD not in r.text and "password" not in r.text


def test_agent_may_not_list_extensions(http: httpx.Client, firm: Firm) -> None:
    assert http.get("/api/v1/call-center/extensions", headers=firm.auth(Role.AGENT)).status_code == 403


def test_delete_extension(http: httpx.Client, firm: Firm) -> None:
    ext_id = _assign(http, firm, Role.AGENT, "140").json()["id"]
    for role in (Role.MANAGER, Role.AGENT):
        assert http.delete(f"/api/v1/call-center/extension/{ext_id}", headers=firm.auth(role)).status_code == 403
    assert http.delete(f"/api/v1/call-center/extension/{ext_id}", headers=firm.auth(Role.OWNER)).status_code == 204
    assert http.delete(f"/api/v1/call-center/extension/{ext_id}", headers=firm.auth(Role.OWNER)).status_code == 404
    assert http.get("/api/v1/call-center/extension", headers=firm.auth(Role.AGENT)).status_code == 404


@pytest.mark.parametrize("bad_id", ["0", "-3", "x", str(2**63), str(2**80)])
def test_delete_with_a_malformed_id_is_422(http: httpx.Client, firm: Firm, bad_id: str) -> None:
    r = http.delete(f"/api/v1/call-center/extension/{bad_id}", headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "extension_id"]


def test_pbx_settings_round_trip_without_the_turn_credential(http: httpx.Client, firm: Firm) -> None:
    assert http.get("/api/v1/call-center/pbx-settings", headers=firm.auth()).status_code == 404
    _configure_pbx(http, firm)
    r = http.get("/api/v1/call-center/pbx-settings", headers=firm.auth(Role.OWNER))
    assert r.status_code == 200
    assert r.json()["wss_url"] == "wss://pbx.alpha.test:8089/ws"
    assert TURN_SECRET not in r.text


def test_the_firms_did_is_set_and_read_back_through_the_api(http: httpx.Client, firm: Firm) -> None:
    r = http.put("/api/v1/call-center/pbx-settings", json={**PBX, "did": "+966 11 000 0000"}, headers=firm.auth())
    assert r.status_code == 200, r.text
    assert http.get("/api/v1/call-center/pbx-settings", headers=firm.auth()).json()["did"] == "+966110000000"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_pbx_settings_are_for_owner_and_admin_only(http: httpx.Client, firm: Firm, role: Role) -> None:
    _configure_pbx(http, firm)
    assert http.get("/api/v1/call-center/pbx-settings", headers=firm.auth(role)).status_code == 403
    r = http.put("/api/v1/call-center/pbx-settings", json={**PBX, "host": "evil.test"}, headers=firm.auth(role))
    assert r.status_code == 403
    assert http.get("/api/v1/call-center/pbx-settings", headers=firm.auth()).json()["host"] == "pbx.alpha.test"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host": "https://pbx.test/ws"}, "host"),
        ({"wss_port": 70000}, "wss_port"),
        ({"wss_path": "ws"}, "wss_path"),
        ({"ice_servers": [{"urls": "http://x"}]}, "ice_servers[0].urls"),
        ({"did": "011 000 0000"}, "did"),
    ],
)
def test_bad_pbx_settings_are_422_and_change_nothing(
    http: httpx.Client, firm: Firm, change: dict[str, object], field: str
) -> None:
    _configure_pbx(http, firm)
    r = http.put("/api/v1/call-center/pbx-settings", json={**PBX, **change}, headers=firm.auth())
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body", field], "msg": r.json()["detail"][0]["msg"], "type": "value_error"}]
    assert TURN_SECRET not in r.text
    assert http.get("/api/v1/call-center/pbx-settings", headers=firm.auth()).json()["host"] == "pbx.alpha.test"
