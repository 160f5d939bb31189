"""The recording route over real HTTP: ranges, who may play, signed links, audit, retention and legal holds."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from services import accounts
from services.models import CallLeg, PbxSettings, Role
from services.pbx import recordings
from tests import factories
from tests.api.conftest import Firm


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def wav(tmp_path: Path) -> bytes:
    # 6 s of 8 kHz 16-bit mono: 96,044 bytes, more than one 64 KiB storage chunk.
    return factories.make_wav(tmp_path / "tone.wav", 6).read_bytes()


@pytest.fixture
def recorded(engine: Engine, firm: Firm, data_dir: Path, wav: bytes) -> dict[str, int]:
    """A call of the firm's agent with a stored recording."""
    with Session(engine, expire_on_commit=False) as session:
        call = factories.make_call(session, firm.tenant, agent=firm.users[Role.AGENT])
        rec = factories.make_stored_recording(session, call, wav, duration_seconds=6)
        session.commit()
        return {"call": call.id, "recording": rec.id}


def _url(rec_id: int) -> str:
    return f"/api/v1/call-center/recordings/{rec_id}"


def test_no_range_is_the_whole_file_with_accept_ranges(http: httpx.Client, firm: Firm, recorded, wav) -> None:
    r = http.get(_url(recorded["recording"]), headers=firm.auth(Role.MANAGER))
    assert r.status_code == 200
    assert r.content == wav
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["content-length"] == str(len(wav))
    assert r.headers["cache-control"] == "no-store"
    assert "content-range" not in r.headers


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [("bytes=0-0", 0, 0), ("bytes=65530-70000", 65530, 70000), ("bytes=90000-", 90000, None), ("bytes=-44", None, None), ("bytes=100-999999999", 100, None)],
)
def test_a_range_is_206_with_the_right_bytes(http: httpx.Client, firm: Firm, recorded, wav, header, first, last) -> None:
    r = http.get(_url(recorded["recording"]), headers={**firm.auth(Role.OWNER), "Range": header})
    assert r.status_code == 206, r.text
    size = len(wav)
    if first is None:
        first = size - 44
    last = size - 1 if last is None else last
    assert r.content == wav[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
    assert r.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("header", ["bytes=96044-", "bytes=200000-300000", "bytes=-0"])
def test_an_unsatisfiable_range_is_416_with_the_size(http: httpx.Client, firm: Firm, recorded, wav, header) -> None:
    r = http.get(_url(recorded["recording"]), headers={**firm.auth(Role.OWNER), "Range": header})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{len(wav)}"


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=0-1,5-6", "items=0-5", "bytes=", "bytes=x-y"])
def test_a_malformed_range_is_ignored_and_the_whole_file_sent(http: httpx.Client, firm: Firm, recorded, wav, header) -> None:
    r = http.get(_url(recorded["recording"]), headers={**firm.auth(Role.OWNER), "Range": header})
    assert (r.status_code, len(r.content)) == (200, len(wav))


def test_an_agent_not_on_the_call_and_another_firm_get_404(engine, http: httpx.Client, firm: Firm, rival: Firm, recorded) -> None:
    with Session(engine, expire_on_commit=False) as session:
        stranger = factories.make_user(session, firm.tenant, Role.AGENT)
        token = accounts.issue_token(session=session, principal=factories.principal_of(stranger))
        session.commit()
    assert http.get(_url(recorded["recording"]), headers={"Authorization": f"Bearer {token}"}).status_code == 404
    for role in (Role.OWNER, Role.AGENT):
        r = http.get(_url(recorded["recording"]), headers=rival.auth(role))
        assert r.status_code == 404
        assert r.json() == {"detail": "recording not found"}
    # The call's own agent plays it; an agent who answered one of its legs too.
    assert http.get(_url(recorded["recording"]), headers=firm.auth(Role.AGENT)).status_code == 200
    with Session(engine, expire_on_commit=False) as session:
        from services.models import utcnow

        now = utcnow()
        session.add(CallLeg(tenant_id=firm.tenant_id, call_id=recorded["call"], unique_id="leg-1", agent_user_id=stranger.id, started_at=now, answered_at=now, ended_at=now, disposition="ANSWERED"))
        session.commit()
    assert http.get(_url(recorded["recording"]), headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_every_play_and_download_is_in_the_owners_audit_log(http: httpx.Client, firm: Firm, recorded) -> None:
    http.get(_url(recorded["recording"]), headers={**firm.auth(Role.MANAGER), "Range": "bytes=0-99"})
    r = http.get(_url(recorded["recording"]), params={"download": "true"}, headers=firm.auth(Role.AGENT))
    assert r.headers["content-disposition"].startswith("attachment;")
    events = http.get("/api/v1/audit", params={"object_type": "call_recording"}, headers=firm.auth(Role.OWNER))
    assert events.status_code == 200
    seen = [(e["action"], e["actor_user_id"], e["object_id"], e["detail"]["call_id"], e["detail"]["range"]) for e in events.json()]
    assert seen == [
        ("recording.download", firm.user_id(Role.AGENT), str(recorded["recording"]), recorded["call"], "all"),
        ("recording.play", firm.user_id(Role.MANAGER), str(recorded["recording"]), recorded["call"], "0-99"),
    ]
    for role in (Role.ADMIN, Role.MANAGER, Role.AGENT):
        assert http.get("/api/v1/audit", headers=firm.auth(role)).status_code == 403


def test_a_signed_link_plays_without_a_bearer_token_until_its_session_ends(engine, http: httpx.Client, firm: Firm, recorded, wav) -> None:
    with Session(engine, expire_on_commit=False) as session:
        sid = accounts.session_id_of(session=session, token=firm.tokens[Role.AGENT])
    sig = recordings.sign_link(session_id=sid, recording_id=recorded["recording"])
    params = {"session": sid, "sig": sig}
    r = http.get(_url(recorded["recording"]), params=params, headers={"Range": "bytes=44-143"})
    assert (r.status_code, r.content) == (206, wav[44:144])
    # Another recording id, a forged signature or no credentials at all: 401.
    assert http.get(_url(recorded["recording"] + 1), params=params).status_code == 401
    assert http.get(_url(recorded["recording"]), params={"session": sid, "sig": sig[:-3] + "abc"}).status_code == 401
    assert http.get(_url(recorded["recording"])).status_code == 401
    # Signed out: the link is dead at once.
    assert http.post("/api/v1/auth/logout", headers=firm.auth(Role.AGENT)).status_code == 204
    assert http.get(_url(recorded["recording"]), params=params).status_code == 401


def test_retention_settings_and_legal_holds(engine, http: httpx.Client, firm: Firm, rival: Firm) -> None:
    owner, admin = firm.auth(Role.OWNER), firm.auth(Role.ADMIN)
    url = "/api/v1/call-center/recording-settings"
    assert http.get(url, headers=owner).json() == {"recording_retention_days": 365}
    assert http.put(url, json={"recording_retention_days": 30}, headers=owner).status_code == 409
    with Session(engine) as session:
        session.add(PbxSettings(tenant_id=firm.tenant_id, host="pbx.alpha.test"))
        session.commit()
    for bad in (0, 3651, "x", None):
        r = http.put(url, json={"recording_retention_days": bad}, headers=admin)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "recording_retention_days"]
    assert http.put(url, json={"recording_retention_days": 30}, headers=firm.auth(Role.MANAGER)).status_code == 403
    assert http.put(url, json={"recording_retention_days": 3650}, headers=admin).json() == {"recording_retention_days": 3650}
    assert http.get(url, headers=owner).json() == {"recording_retention_days": 3650}

    hold = f"/api/v1/call-center/legal-holds/{firm.case.id}"
    assert http.put(hold, json={"legal_hold": True}, headers=admin).json() == {"legal_hold": True}
    listed = http.get("/api/v1/call-center/legal-holds", headers=owner).json()
    assert [(c["id"], c["legal_hold"]) for c in listed] == [(firm.case.id, True)]
    assert http.put(f"/api/v1/call-center/legal-holds/{rival.case.id}", json={"legal_hold": True}, headers=admin).status_code == 404
    assert http.put(hold, json={"legal_hold": False}, headers=firm.auth(Role.AGENT)).status_code == 403
    actions = [e["action"] for e in http.get("/api/v1/audit", headers=owner).json()]
    assert actions[:2] == ["case.legal_hold", "recording.retention"]
