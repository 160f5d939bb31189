"""The PBX settings' call-record source over HTTP: the UCM API password is write-only and
stored encrypted, bad values are 422 with their field and change nothing, and "test
connection" logs in to the UCM (the emulator on loopback) and says what happened."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from dev.pbx_lab.ucm_emulator import UcmEmulator
from services import db
from services.models import Role
from tests.api.conftest import Firm

API_PASSWORD = "Ucm-api-Secret-42"
URL = "/api/v1/call-center/pbx-settings"
PBX = {"host": "pbx.alpha.test", "wss_port": 8089, "wss_path": "/ws"}


@pytest.fixture
def ucm(tmp_path):
    emu = UcmEmulator(tmp_path / "ucm", password=API_PASSWORD)
    emu.start()
    yield emu
    emu.stop()


def _put(http: httpx.Client, firm: Firm, **fields) -> httpx.Response:
    return http.put(URL, json={**PBX, **fields}, headers=firm.auth(Role.ADMIN))


def test_the_api_password_is_stored_encrypted_and_never_returned(http: httpx.Client, firm: Firm) -> None:
    r = _put(http, firm, cdr_source="ucm", api_url="https://ucm.alpha.test:8089/api", api_user="cdrapi",
             api_password=API_PASSWORD, realtime_port=5100)
    assert r.status_code == 200, r.text
    assert API_PASSWORD not in r.text
    got = http.get(URL, headers=firm.auth()).json()
    assert (got["cdr_source"], got["api_url"], got["api_user"], got["api_password_set"], got["realtime_port"]) == (
        "ucm", "https://ucm.alpha.test:8089", "cdrapi", True, 5100)
    with db.get_engine().connect() as conn:
        stored = conn.execute(sa.text("SELECT api_password_encrypted FROM pbx_settings")).scalar_one()
    assert stored and API_PASSWORD not in stored
    # Saving the SIP part again keeps the call-record part and the password.
    assert _put(http, firm, host="pbx2.alpha.test").status_code == 200
    got = http.get(URL, headers=firm.auth()).json()
    assert (got["cdr_source"], got["api_password_set"]) == ("ucm", True)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cdr_source": "asterisk"}, "cdr_source"),
        ({"cdr_source": "lab"}, "cdr_source"),  # the lab only for a PBX on this machine
        ({"cdr_source": "ucm", "api_url": "http://ucm.alpha.test:8089", "api_user": "cdrapi",
          "api_password": "x" * 10}, "api_url"),
        ({"cdr_source": "ucm", "api_url": "https://ucm.alpha.test", "api_user": "cdr api",
          "api_password": "x" * 10}, "api_user"),
        ({"cdr_source": "ucm", "api_url": "https://ucm.alpha.test", "api_user": "cdrapi"}, "api_password"),
        ({"realtime_port": 80}, "realtime_port"),
    ],
)
def test_bad_call_record_settings_are_422_with_their_field_and_change_nothing(
        http: httpx.Client, firm: Firm, change: dict, field: str) -> None:
    assert _put(http, firm).status_code == 200
    r = _put(http, firm, **change)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    got = http.get(URL, headers=firm.auth()).json()
    assert (got["cdr_source"], got["api_url"], got["api_password_set"], got["realtime_port"]) == ("", "", False, None)


def test_test_connection_says_whether_the_ucm_accepts_the_api_user(http: httpx.Client, firm: Firm, ucm) -> None:
    base = {"host": "127.0.0.1", "wss_port": 8089, "wss_path": "/ws", "cdr_source": "ucm", "api_url": ucm.url,
            "api_user": "cdrapi"}
    assert http.put(URL, json={**base, "api_password": "wrong-password-1"}, headers=firm.auth()).status_code == 200
    r = http.post(f"{URL}/test-connection", headers=firm.auth(Role.ADMIN))
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False and r.json()["code"] == "auth_failed"
    assert "wrong account or password" in r.json()["message"] and "wrong-password-1" not in r.text

    assert http.put(URL, json={**base, "api_password": API_PASSWORD}, headers=firm.auth()).status_code == 200
    r = http.post(f"{URL}/test-connection", headers=firm.auth())
    assert r.json() == {"ok": True, "code": "ok", "message": "Connected to the UCM as cdrapi; it has no call records "
                                                             "yet."}
    assert [q["action"] for q in ucm.requests][-3:] == ["challenge", "login", "cdrapi"]


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_test_connection_is_for_owner_and_admin(http: httpx.Client, firm: Firm, role: Role) -> None:
    assert _put(http, firm).status_code == 200
    assert http.post(f"{URL}/test-connection", headers=firm.auth(role)).status_code == 403


def test_test_connection_before_any_pbx_settings_is_404_and_none_says_so(http: httpx.Client, firm: Firm,
                                                                          rival: Firm) -> None:
    assert http.post(f"{URL}/test-connection", headers=firm.auth()).status_code == 404
    assert _put(http, rival).status_code == 200  # another firm's settings are not this one's
    assert http.post(f"{URL}/test-connection", headers=firm.auth()).status_code == 404
    r = http.post(f"{URL}/test-connection", headers=rival.auth())
    assert r.json()["ok"] is False and r.json()["code"] == "not_configured"
