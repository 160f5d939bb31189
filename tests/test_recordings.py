"""Call recordings: fetched from the PBX into encrypted storage, played by the right people
(audited), deleted after retention except on legal hold."""

from __future__ import annotations

import wave
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services import audit, blobs, db, storage
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import AuditEvent, Blob, CallLeg, CallRecording, PbxSettings, Role, User, utcnow
from services.pbx import recordings, retention
from services.pbx.records import CdrSourceError
from tests import factories

pytestmark = pytest.mark.usefixtures("engine")


class DirectorySource:
    """A CdrSource over recording files in a directory (the part of a source this module uses)."""

    kind = "lab"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.opened: list[str] = []
        self.fail_with: Exception | None = None

    def catch_up(self, after_position, *, since=None):  # pragma: no cover - not used here
        return iter(())

    async def live(self):  # pragma: no cover - not used here
        return
        yield

    def open_recording(self, name: str) -> Iterator[bytes]:
        self.opened.append(name)
        if self.fail_with is not None:
            raise self.fail_with
        path = self.root / name
        if not path.is_file():
            raise CdrSourceError("not_found", f"no recording named {name}")
        with open(path, "rb") as f:
            while chunk := f.read(20_000):
                yield chunk


@pytest.fixture
def store(tmp_path: Path) -> storage.LocalEncryptedStore:
    return storage.LocalEncryptedStore(tmp_path / "store")


@pytest.fixture
def source(tmp_path: Path) -> DirectorySource:
    (tmp_path / "pbx").mkdir()
    return DirectorySource(tmp_path / "pbx")


def _firm_with_recording(session: Session, source: DirectorySource, *, seconds: float = 3.0, started_days_ago: int = 0, name: str = "rec-1.wav"):
    firm = factories.make_firm(session)
    call = factories.make_call(session, firm.tenant, agent=firm.agent, started_at=utcnow() - timedelta(days=started_days_ago))
    factories.make_wav(source.root / name, seconds)
    rec = CallRecording(tenant_id=firm.tenant.id, call_id=call.id, source_file=name)
    session.add(rec)
    session.commit()
    return firm, call, rec


def _row(session: Session, rec_id: int) -> CallRecording:
    session.expire_all()
    return session.exec(select(CallRecording).where(CallRecording.id == rec_id)).one()


def _blob(session: Session, rec_id: int) -> Blob | None:
    row = _row(session, rec_id)
    return session.get(Blob, row.blob_id) if row.blob_id is not None else None


def _key(session: Session, rec_id: int) -> str | None:
    blob = _blob(session, rec_id)
    return blob.storage_key if blob else None


def test_fetch_stores_the_recording_encrypted_with_its_facts(session, source, store) -> None:
    firm, call, rec = _firm_with_recording(session, source, seconds=3.0)
    n = recordings.fetch_pending(session_factory=db.session_scope, tenant_id=firm.tenant.id, source=source, store=store)
    assert n == 1
    row, blob = _row(session, rec.id), _blob(session, rec.id)
    original = (source.root / "rec-1.wav").read_bytes()
    assert blob and blob.storage_key.startswith(f"recordings/t{firm.tenant.id}/") and blob.storage_key.endswith(".wav")
    assert (blob.tenant_id, blob.kind, blob.key_id) == (firm.tenant.id, "recording", __import__("services.security").security.current_key().kid)
    assert (blob.size_bytes, blob.content_type, row.duration_seconds) == (len(original), "audio/wav", 3)
    assert blob.sha256 == __import__("hashlib").sha256(original).hexdigest()
    # At rest: no RIFF header, not the audio bytes, and the same bytes back with the key.
    on_disk = store._path(blob.storage_key).read_bytes()
    assert not on_disk.startswith(b"RIFF") and b"WAVEfmt" not in on_disk and original[1000:1100] not in on_disk
    assert b"".join(store.open_range(blob.storage_key, purpose=recordings.PURPOSE)) == original
    # Nothing left to fetch: a second run does not touch the PBX.
    assert recordings.fetch_pending(session_factory=db.session_scope, tenant_id=firm.tenant.id, source=source, store=store) == 0
    assert source.opened == ["rec-1.wav"]


def test_fetch_only_touches_its_own_firm(session, source, store) -> None:
    firm, _, rec = _firm_with_recording(session, source)
    other = factories.make_firm(session)
    session.commit()
    assert recordings.fetch_pending(session_factory=db.session_scope, tenant_id=other.tenant.id, source=source, store=store) == 0
    assert _key(session, rec.id) is None


def test_a_failed_fetch_stays_pending_with_backoff_and_is_bounded(session, source, store, caplog) -> None:
    firm, _, rec = _firm_with_recording(session, source)
    source.fail_with = CdrSourceError("unreachable", "the PBX at https://admin:hunter2@ucm did not answer")
    now = utcnow()
    tid = firm.tenant.id
    assert recordings.fetch_pending(session_factory=db.session_scope, tenant_id=tid, source=source, store=store, now=now) == 0
    row = _row(session, rec.id)
    assert (row.blob_id, row.fetch_attempts, row.fetch_error) == (None, 1, "unreachable")
    assert row.fetch_after == now + recordings.FETCH_BACKOFF
    assert "hunter2" not in caplog.text and "unreachable" in caplog.text
    # Within the backoff: not tried again.
    assert recordings.fetch_pending(session_factory=db.session_scope, tenant_id=tid, source=source, store=store, now=now + timedelta(seconds=5)) == 0
    assert len(source.opened) == 1
    # The PBX is back: the next attempt after the backoff stores it.
    source.fail_with = None
    later = now + timedelta(minutes=1)
    assert recordings.fetch_pending(session_factory=db.session_scope, tenant_id=tid, source=source, store=store, now=later) == 1
    assert _row(session, rec.id).fetch_error is None

    # A file that never comes: given up after MAX_FETCH_ATTEMPTS.
    _, _, gone = _firm_with_recording(session, source, name="gone.wav")
    (source.root / "gone.wav").unlink()
    t = later
    gone_tid = _row(session, gone.id).tenant_id
    for _ in range(recordings.MAX_FETCH_ATTEMPTS + 2):
        recordings.fetch_pending(session_factory=db.session_scope, tenant_id=gone_tid, source=source, store=store, now=t)
        t += timedelta(hours=1)
    row = _row(session, gone.id)
    assert (row.fetch_attempts, row.fetch_error, row.blob_id) == (recordings.MAX_FETCH_ATTEMPTS, "not_found", None)
    assert source.opened.count("gone.wav") == recordings.MAX_FETCH_ATTEMPTS
    # The call's detail says which recording plays and which never will.
    from services import call_center

    for rec_id, stored, failed in ((rec.id, True, False), (gone.id, False, True)):
        row = _row(session, rec_id)
        owner = factories.principal_of(session.exec(select(User).where(User.tenant_id == row.tenant_id, User.role == Role.OWNER)).first())
        [shown] = call_center.get_call(session=session, tenant_id=row.tenant_id, actor=owner, call_id=row.call_id).recordings
        assert (shown.stored, shown.fetch_failed, shown.purged_at) == (stored, failed, None)


def test_wav_duration_handles_streaming_headers(tmp_path) -> None:
    path = factories.make_wav(tmp_path / "a.wav", 2.5)
    data = path.read_bytes()
    assert recordings.wav_duration(data[:4096], len(data)) == pytest.approx(2.5, abs=0.01)
    # A recorder that could not seek back leaves the data size at 0xFFFFFFFF.
    with wave.open(str(path)) as w:
        assert w.getnframes() == 20_000
    broken = bytearray(data)
    pos = broken.index(b"data")
    broken[pos + 4 : pos + 8] = b"\xff\xff\xff\xff"
    assert recordings.wav_duration(bytes(broken[:4096]), len(broken)) == pytest.approx(2.5, abs=0.01)
    assert recordings.wav_duration(b"ID3\x03...", 1000) is None


def _stored(session, source, store, **kw):
    firm, call, rec = _firm_with_recording(session, source, **kw)
    recordings.fetch_pending(session_factory=db.session_scope, tenant_id=firm.tenant.id, source=source, store=store)
    return firm, call, _row(session, rec.id)


def _read(stream: blobs.BlobStream) -> bytes:
    return b"".join(stream.chunks)


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MANAGER, Role.AGENT])
def test_supervisors_and_the_calls_agent_may_play_and_each_play_is_audited(session, source, store, role) -> None:
    firm, call, rec = _stored(session, source, store)
    principal = firm.principal(role)
    stream = recordings.open_for(principal, session=session, tenant_id=firm.tenant.id, recording_id=rec.id, store=store)
    assert _read(stream) == (source.root / "rec-1.wav").read_bytes()
    assert (stream.partial, stream.start, stream.end, stream.size) == (False, 0, _blob(session, rec.id).size_bytes - 1, _blob(session, rec.id).size_bytes)
    events = audit.list_events(session=session, tenant_id=firm.tenant.id, action="recording.play")
    assert [(e.actor_user_id, e.object_id, e.detail["call_id"], e.detail["range"]) for e in events] == [
        (principal.user_id, str(rec.id), call.id, "all")
    ]


def test_a_range_returns_the_right_bytes_and_is_audited_with_it(session, source, store) -> None:
    # 6 s of 16-bit 8 kHz audio: 96,044 bytes, so the range crosses a 64 KiB storage chunk.
    firm, _, rec = _stored(session, source, store, seconds=6.0)
    original = (source.root / "rec-1.wav").read_bytes()
    tid = firm.tenant.id
    s = recordings.open_for(firm.manager, session=session, tenant_id=tid, recording_id=rec.id, start=65_530, end=70_000, store=store)
    assert (_read(s), s.partial, s.start, s.end) == (original[65_530:70_001], True, 65_530, 70_000)
    s = recordings.open_for(firm.manager, session=session, tenant_id=tid, recording_id=rec.id, start=None, end=100, action="download", store=store)
    assert _read(s) == original[-100:]
    s = recordings.open_for(firm.manager, session=session, tenant_id=tid, recording_id=rec.id, start=10, end=10**9, store=store)
    assert _read(s) == original[10:]
    with pytest.raises(storage.RangeNotSatisfiable) as err:
        recordings.open_for(firm.manager, session=session, tenant_id=tid, recording_id=rec.id, start=len(original), end=None, store=store)
    assert err.value.size == len(original)
    ranges = [(e.action, e.detail["range"]) for e in audit.list_events(session=session, tenant_id=tid, object_type="call_recording")]
    assert ranges == [("recording.play", f"10-{len(original) - 1}"), ("recording.download", f"{len(original) - 100}-{len(original) - 1}"), ("recording.play", "65530-70000")]


def test_an_agent_not_on_the_call_gets_not_found_but_an_agent_who_answered_a_leg_may_play(session, source, store) -> None:
    firm, call, rec = _stored(session, source, store)
    stranger = factories.principal_of(factories.make_user(session, firm.tenant, Role.AGENT))
    rung_only = factories.make_user(session, firm.tenant, Role.AGENT)
    leg_agent = factories.make_user(session, firm.tenant, Role.AGENT)
    t = call.started_at
    session.add(CallLeg(tenant_id=firm.tenant.id, call_id=call.id, unique_id="u-0", agent_user_id=rung_only.id,
                        started_at=t, ended_at=t + timedelta(seconds=5), disposition="CANCELED"))
    session.add(CallLeg(tenant_id=firm.tenant.id, call_id=call.id, unique_id="u-1", agent_user_id=leg_agent.id,
                        started_at=t, answered_at=t + timedelta(seconds=5), ended_at=t + timedelta(seconds=60), disposition="ANSWERED"))
    session.commit()
    for outsider in (stranger, factories.principal_of(rung_only)):
        with pytest.raises(NotFound):
            recordings.open_for(outsider, session=session, tenant_id=firm.tenant.id, recording_id=rec.id, store=store)
    stream = recordings.open_for(factories.principal_of(leg_agent), session=session, tenant_id=firm.tenant.id, recording_id=rec.id, store=store)
    assert len(_read(stream)) == _blob(session, rec.id).size_bytes
    assert [e.actor_user_id for e in audit.list_events(session=session, tenant_id=firm.tenant.id, action="recording.play")] == [leg_agent.id]


def test_another_firm_gets_not_found(session, source, store) -> None:
    firm, _, rec = _stored(session, source, store)
    other = factories.make_firm(session)
    for principal, tid in ((other.owner, other.tenant.id), (other.owner, firm.tenant.id)):
        with pytest.raises(NotFound):
            recordings.open_for(principal, session=session, tenant_id=tid, recording_id=rec.id, store=store)
    assert session.exec(select(AuditEvent)).all() == []


def test_a_recording_not_fetched_yet_is_not_found(session, source, store) -> None:
    firm, _, rec = _firm_with_recording(session, source)
    with pytest.raises(NotFound, match="fetched"):
        recordings.open_for(firm.owner, session=session, tenant_id=firm.tenant.id, recording_id=rec.id, store=store)


def _settings(session, firm, days: int) -> None:
    session.add(PbxSettings(tenant_id=firm.tenant.id, host="pbx.test", recording_retention_days=days))
    session.commit()


def test_retention_deletes_old_recordings_but_keeps_one_on_legal_hold(session, source, store) -> None:
    firm = factories.make_firm(session)
    _settings(session, firm, 30)
    tid = firm.tenant.id
    held_case = factories.make_case(session, firm.tenant)
    made = {}
    for label, days_ago, case in (("old", 40, None), ("held", 40, held_case), ("recent", 10, None), ("pending", 40, None)):
        call = factories.make_call(session, firm.tenant, agent=firm.agent, started_at=utcnow() - timedelta(days=days_ago), case_id=case.id if case else None)
        factories.make_wav(source.root / f"{label}.wav", 1)
        rec = CallRecording(tenant_id=tid, call_id=call.id, source_file=f"{label}.wav")
        session.add(rec)
        made[label] = rec
    session.commit()
    retention.set_legal_hold(session=session, tenant_id=tid, actor=firm.admin, case_id=held_case.id, hold=True)
    session.commit()
    (source.root / "pending.wav").unlink()
    recordings.fetch_pending(session_factory=db.session_scope, tenant_id=tid, source=source, store=store)
    keys = {label: _key(session, r.id) for label, r in made.items()}
    assert keys["pending"] is None and all(keys[k] for k in ("old", "held", "recent"))

    assert retention.purge_expired(session=session, tenant_id=tid, store=store) == 2
    session.commit()
    old, held, recent, pending = (_row(session, made[k].id) for k in ("old", "held", "recent", "pending"))
    assert old.blob_id is None and old.purged_at is not None and not store.exists(keys["old"])
    assert session.exec(select(Blob).where(Blob.storage_key == keys["old"])).first() is None
    assert pending.purged_at is not None
    assert _key(session, held.id) == keys["held"] and store.exists(keys["held"]) and held.purged_at is None
    assert _key(session, recent.id) == keys["recent"] and store.exists(keys["recent"])
    # A purged recording is no longer played, nor fetched again.
    with pytest.raises(NotFound):
        recordings.open_for(firm.owner, session=session, tenant_id=tid, recording_id=old.id, store=store)
    (source.root / "pending.wav").write_bytes(b"RIFF")
    assert recordings.fetch_pending(session_factory=db.session_scope, tenant_id=tid, source=source, store=store) == 0
    [event] = audit.list_events(session=session, tenant_id=tid, action="recording.purge")
    assert event.actor_user_id is None and event.detail["count"] == 2 and event.detail["retention_days"] == 30
    # Released from hold: the next daily run deletes it.
    retention.set_legal_hold(session=session, tenant_id=tid, actor=firm.owner, case_id=held_case.id, hold=False)
    session.commit()
    assert retention.purge_all_firms(session_factory=db.session_scope, store=store) == {tid: 1}
    assert not store.exists(keys["held"])


def test_retention_days_are_validated_and_admin_only(session) -> None:
    firm = factories.make_firm(session)
    tid = firm.tenant.id
    with pytest.raises(Conflict):
        retention.set_retention_days(session=session, tenant_id=tid, actor=firm.owner, days=30)
    _settings(session, firm, 365)
    for bad in (0, 3651, -1, True):
        with pytest.raises(Invalid):
            retention.set_retention_days(session=session, tenant_id=tid, actor=firm.owner, days=bad)
    with pytest.raises(Forbidden):
        retention.set_retention_days(session=session, tenant_id=tid, actor=firm.manager, days=30)
    assert retention.set_retention_days(session=session, tenant_id=tid, actor=firm.admin, days=3650) == 3650
    assert retention.retention_days(session=session, tenant_id=tid) == 3650
    other = factories.make_firm(session)
    case = factories.make_case(session, firm.tenant)
    with pytest.raises(Forbidden):
        retention.set_legal_hold(session=session, tenant_id=tid, actor=other.owner, case_id=case.id, hold=True)
    with pytest.raises(NotFound):
        retention.set_legal_hold(session=session, tenant_id=other.tenant.id, actor=other.owner, case_id=case.id, hold=True)


def test_cases_for_hold_lists_held_cases_then_matches(session) -> None:
    firm = factories.make_firm(session)
    tid = firm.tenant.id
    held = factories.make_case(session, firm.tenant, title="Estate of Al-Harbi")
    factories.make_case(session, firm.tenant, title="Lease dispute 100%")
    other = factories.make_firm(session)
    factories.make_case(session, other.tenant, title="Lease of the rival")
    retention.set_legal_hold(session=session, tenant_id=tid, actor=firm.owner, case_id=held.id, hold=True)
    found = retention.cases_for_hold(session=session, tenant_id=tid, actor=firm.admin, query="lease")
    assert [(c.title, c.legal_hold) for c in found] == [("Estate of Al-Harbi", True), ("Lease dispute 100%", False)]
    # LIKE wildcards are searched for as text.
    assert [c.title for c in retention.cases_for_hold(session=session, tenant_id=tid, actor=firm.admin, query="_")] == ["Estate of Al-Harbi"]
    assert [c.title for c in retention.cases_for_hold(session=session, tenant_id=tid, actor=firm.admin, query="0%")] == ["Estate of Al-Harbi", "Lease dispute 100%"]
    with pytest.raises(Forbidden):
        retention.cases_for_hold(session=session, tenant_id=tid, actor=firm.manager)


def test_a_signed_link_acts_for_its_session_until_it_ends(session, source, store) -> None:
    from services import accounts

    firm, _, rec = _stored(session, source, store)
    token = accounts.issue_token(session=session, principal=firm.agent)
    sid = accounts.session_id_of(session=session, token=token)
    session.commit()
    sig = recordings.sign_link(session_id=sid, recording_id=rec.id)
    principal = recordings.principal_for_link(session=session, session_id=sid, recording_id=rec.id, signature=sig)
    assert principal.user_id == firm.agent.user_id
    from services.errors import AuthenticationFailed

    for session_id, rec_id, signature in ((sid, rec.id + 1, sig), (sid + 1, rec.id, sig), (sid, rec.id, sig[:-2] + "AA")):
        with pytest.raises(AuthenticationFailed):
            recordings.principal_for_link(session=session, session_id=session_id, recording_id=rec_id, signature=signature)
    expired = recordings.sign_link(session_id=sid, recording_id=rec.id, now=utcnow() - 2 * recordings.LINK_TTL - timedelta(seconds=2))
    with pytest.raises(AuthenticationFailed):
        recordings.principal_for_link(session=session, session_id=sid, recording_id=rec.id, signature=expired)
    accounts.revoke_token(session=session, token=token)
    session.commit()
    with pytest.raises(AuthenticationFailed):
        recordings.principal_for_link(session=session, session_id=sid, recording_id=rec.id, signature=sig)


def _old_stored_recording(session, tmp_path, monkeypatch):
    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(tmp_path / "data"))
    firm = factories.make_firm(session)
    _settings(session, firm, 7)
    call = factories.make_call(session, firm.tenant, started_at=utcnow() - timedelta(days=8))
    rec = factories.make_stored_recording(session, call, b"RIFF old audio")
    session.commit()
    return rec


def test_the_cli_command_runs_the_daily_purge(session, tmp_path, monkeypatch, capsys) -> None:
    from services import cli

    rec = _old_stored_recording(session, tmp_path, monkeypatch)
    key = _key(session, rec.id)
    assert key and storage.default_store().exists(key)
    assert cli.main(["purge-recordings"]) == 0
    assert "deleted 1 recording(s)" in capsys.readouterr().out
    assert not storage.default_store().exists(key)
    assert _row(session, rec.id).purged_at is not None


def test_the_daily_loop_purges_at_start_and_stops_when_asked(session, tmp_path, monkeypatch) -> None:
    import asyncio

    rec = _old_stored_recording(session, tmp_path, monkeypatch)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(retention.purge_daily(stop, interval=timedelta(hours=1)))
        for _ in range(200):
            await asyncio.sleep(0.02)
            if _row(session, rec.id).purged_at is not None:
                break
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert _key(session, rec.id) is None


def test_deleting_a_call_deletes_its_recordings_files(session, tmp_path, monkeypatch) -> None:
    from services import call_center

    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(tmp_path / "data"))
    firm = factories.make_firm(session)
    call = factories.make_call(session, firm.tenant, agent=firm.agent)
    rec = factories.make_stored_recording(session, call, b"RIFF audio")
    session.commit()
    key = _key(session, rec.id)
    assert key and storage.default_store().exists(key)
    call_center.delete_call(session=session, tenant_id=firm.tenant.id, actor=firm.admin, call_id=call.id)
    session.commit()
    assert not storage.default_store().exists(key)
    assert session.exec(select(Blob).where(Blob.storage_key == key)).first() is None
    [event] = audit.list_events(session=session, tenant_id=firm.tenant.id, action="call.delete")
    assert event.detail["recording_files_deleted"] == 1


def test_rotating_the_key_reseals_stored_recordings(session, store, monkeypatch) -> None:
    from services import key_rotation, security

    old, new = security.generate_key(), security.generate_key()
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", old)
    firm = factories.make_firm(session)
    call = factories.make_call(session, firm.tenant)
    rec = factories.make_stored_recording(session, call, b"RIFF" + bytes(range(256)) * 600, store=store)
    gone = factories.make_stored_recording(session, call, b"RIFF gone", store=store)
    store.delete(_key(session, gone.id))
    session.commit()
    assert _blob(session, rec.id).key_id == security.parse_key(old).kid
    counts = {"blob.recording": 1, "blob.whatsapp_media": 0, "blob.case_document": 0}
    assert key_rotation.reencrypt_files(session=session, new_key=new, store=store) == counts
    session.commit()
    assert _blob(session, rec.id).key_id == security.parse_key(new).kid
    # Only the new key configured: the file reads; a second run has nothing to do.
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", new)
    assert b"".join(store.open_range(_key(session, rec.id), purpose=recordings.PURPOSE)) == b"RIFF" + bytes(range(256)) * 600
    assert key_rotation.reencrypt_files(session=session, new_key=new, store=store) == {**counts, "blob.recording": 0}
    # A file no configured key opens stops the run with a clear error.
    monkeypatch.setenv("WATHEEQ_SECRET_KEY", security.generate_key())
    with pytest.raises(key_rotation.RotationError, match=f"blob {_row(session, rec.id).blob_id} \\(recording\\)"):
        key_rotation.reencrypt_files(session=session, new_key=security.generate_key(), store=store)
