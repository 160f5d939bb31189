"""Call recordings on the PBX lab, end to end: an outside caller talks to a desk phone; the
reconciler process (``python -m services.pbx.reconciler`` with the lab's CDR source) stores
the lab's recording encrypted within a minute of the hang-up; the REST API streams it back
(whole, and by byte range) as a WAV as long as the call.

The lab runs in its own network namespace with only ``lo`` (pbx_lab_support).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import wave

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlmodel import Session

from services import accounts, db, storage
from services.models import Blob, CallRecording, PbxSettings, Role, Tenant, User
from tests import factories
from tests.softphone.pbx_lab_support import ROOT, lab_for_tests
from watheeq_ui.api.app import api

CALLER = "0551239876"
TALK = 4


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    work = tmp_path_factory.mktemp("recordings-lab")
    data_dir = work / "data"
    # The API server below runs in this process: it reads the store where the reconciler writes.
    saved = os.environ.get("WATHEEQ_DATA_DIR")
    os.environ["WATHEEQ_DATA_DIR"] = str(data_dir)
    try:
        with lab_for_tests(work, ring_seconds=5) as (lab, firm):
            db_url = f"sqlite:///{lab.dir.parent / 'watheeq.db'}"
            engine = db.create_db_engine(db_url)
            db.configure(engine)
            with Session(engine, expire_on_commit=False) as session:
                settings = session.execute(sa.select(PbxSettings).where(PbxSettings.sip_domain == firm.domain)).scalar_one()
                settings.cdr_source = "lab"
                tenant = session.get(Tenant, settings.tenant_id)
                client = factories.make_client(session, tenant, name="Recorded Caller", phone=CALLER)
                owner = session.execute(sa.select(User).where(User.tenant_id == tenant.id, User.role == Role.OWNER)).scalars().first()
                token = accounts.issue_token(session=session, principal=factories.principal_of(owner))
                session.commit()
            server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            env = {
                **os.environ, "WATHEEQ_DATABASE_URL": db_url, "DEV_PBX_DIR": str(lab.dir), "WATHEEQ_PBX_TICK_SECONDS": "0.2",
                "WATHEEQ_PBX_CATCH_UP_SECONDS": "5",
            }
            reconciler = subprocess.Popen([sys.executable, "-m", "services.pbx.reconciler", "--worker-id", "rec-lab"], cwd=ROOT, env=env)
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=20)
            try:
                yield lab, firm, http, client, engine, data_dir
            finally:
                http.close()
                reconciler.terminate()
                reconciler.wait(10)
                server.should_exit = True
                thread.join(10)
                db.configure(None)
                engine.dispose()
    finally:
        if saved is None:
            os.environ.pop("WATHEEQ_DATA_DIR", None)
        else:
            os.environ["WATHEEQ_DATA_DIR"] = saved


def _wait_for(fetch, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = fetch()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_an_answered_calls_recording_is_stored_within_a_minute_and_streams_back(stack):
    lab, firm, http, client, engine, data_dir = stack
    assert _wait_for(lambda: http.get("/api/v1/call-center/pbx-settings/feed").json().get("connected"), 30)
    agent = lab.agent("a1", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5071)
    caller = lab.phone("caller", port=5094, number=CALLER)
    caller.dial(lab.did_uri(firm.did))
    agent.wait_event("CALL_INCOMING", 10)
    agent.accept()
    established = agent.wait_event("CALL_ESTABLISHED", 10)["at"]
    time.sleep(TALK)
    caller.hangup()
    closed = agent.wait_event("CALL_CLOSED", 10)["at"]
    talk = closed - established

    def stored():
        rows = http.get("/api/v1/call-center/calls", params={"client_id": client.id}).json()["data"]
        if not rows:
            return None
        detail = http.get(f"/api/v1/call-center/calls/{rows[0]['id']}").json()
        done = [r for r in detail["recordings"] if r["stored"]]
        return done[0] if done else None

    recording = _wait_for(stored, 60)
    assert recording, "the recording was not stored within a minute of the hang-up"
    print(f"recording stored {time.time() - closed:.1f} s after the hang-up")
    assert recording["content_type"] == "audio/wav"
    assert abs(recording["duration_seconds"] - talk) <= 1

    whole = http.get(f"/api/v1/call-center/recordings/{recording['id']}")
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    with wave.open(io.BytesIO(whole.content)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert abs(seconds - talk) <= 1
    part = http.get(f"/api/v1/call-center/recordings/{recording['id']}", headers={"Range": "bytes=1000-70999"})
    assert part.status_code == 206 and part.content == whole.content[1000:71000]
    assert part.headers["content-range"] == f"bytes 1000-70999/{len(whole.content)}"

    # At rest the file is neither a WAV nor the audio's bytes.
    with Session(engine) as session:
        key = session.execute(
            sa.select(Blob.storage_key).join(CallRecording, CallRecording.blob_id == Blob.id).where(CallRecording.id == recording["id"])
        ).scalar_one()
    raw = storage.LocalEncryptedStore(data_dir / "store")._path(key).read_bytes()
    assert not raw.startswith(b"RIFF") and whole.content[5000:5100] not in raw
    plays = http.get("/api/v1/audit", params={"object_type": "call_recording"}).json()
    assert [e["detail"]["range"] for e in plays][:2] == ["1000-70999", "all"]
