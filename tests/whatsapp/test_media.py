"""Files in: a client's photo, PDF and voice note are downloaded by the sidecar and kept encrypted
with name, type, size and SHA-256; limits refuse with a reason; a failed download is retried,
then waits for a person; neonize's own media messages are described and fetched with
download_any."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db, storage
from services.errors import Conflict, NotFound
from services.models import Blob, Principal, Role, Tenant, WhatsappMessage
from services.whatsapp import media, store
from services.whatsapp.neonize_messages import media_of, message_of_ref
from services.whatsapp.simulator import enqueue_command
from tests import factories as f
from tests.whatsapp.conftest import simulated_sidecar
from tests.whatsapp.test_neonize_gateway import _held_sidecar, _jid
from tests.whatsapp.test_send_crash import _linked

from neonize.aioze.events import MessageEv  # isort: skip
from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource  # isort: skip
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import AudioMessage, DocumentMessage, Message  # isort: skip

PHONE = "966507778899"


def _files(folder: Path) -> dict[str, tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "photo.png": (os.urandom(150_000), "image/png"),
        "notice.pdf": (b"%PDF-1.4\n" + os.urandom(300_000), "application/pdf"),
        "voice.ogg": (b"OggS" + os.urandom(40_000), "audio/ogg; codecs=opus"),
    }
    out = {}
    for name, (data, mime) in made.items():
        (folder / name).write_bytes(data)
        out[name] = (folder / name, mime)
    return out


def _rows(tenant_id: int) -> dict[str, WhatsappMessage]:
    with db.session_scope() as session:
        rows = session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id)).all()
        for r in rows:
            session.expunge(r)
        return {r.wa_message_id: r for r in rows}  # type: ignore[misc]


def _blob(row: WhatsappMessage) -> Blob:
    """The stored file of ``row`` (services.blobs)."""
    with db.session_scope() as session:
        blob = session.get(Blob, row.blob_id)
        assert blob is not None
        session.expunge(blob)
        return blob


async def _until(check, timeout: float = 10.0):
    async with asyncio.timeout(timeout):
        while not (value := await asyncio.to_thread(check)):
            await asyncio.sleep(0.05)
        return value


async def test_received_files_are_stored_encrypted_and_read_back_by_range(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATHEEQ_WHATSAPP_MEDIA_MAX_MB", "0.4")
    tenant_id, admin = await _linked(data_dir)
    files = _files(data_dir / "phone")
    big = data_dir / "phone" / "big.bin"
    big.write_bytes(os.urandom(500_000))
    root = data_dir / "whatsapp" / "simulator"
    sidecar = simulated_sidecar(data_dir, "w-media", health_interval=0.1)
    task = asyncio.create_task(sidecar.run())
    try:
        for i, (name, (path, mime)) in enumerate(files.items()):
            enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, wa_message_id=f"M{i}", body="", message_type="document", media_file=str(path), media_mime=mime)
        enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, wa_message_id="BIG", media_file=str(big))
        rows = await _until(lambda: (r := _rows(tenant_id)) and len(r) == 4 and all(m.media_state != media.PENDING for m in r.values()) and r)
        assert rows["BIG"].media_state == media.TOO_LARGE and rows["BIG"].blob_id is None
        store_dir = data_dir / "store"
        for i, (name, (path, mime)) in enumerate(files.items()):
            row = rows[f"M{i}"]
            data = path.read_bytes()
            assert (row.media_state, row.media_name, row.media_mime, row.media_size) == (media.STORED, name, mime, len(data))
            blob = _blob(row)
            assert (blob.sha256, blob.kind, blob.content_type, blob.size_bytes) == (hashlib.sha256(data).hexdigest(), "whatsapp_media", mime, len(data))
            # On disk the file is unreadable without the key: no plaintext run of it appears.
            (on_disk,) = [p for p in store_dir.rglob("*.wqs") if p.stem == blob.storage_key.rsplit("/", 1)[1]]
            assert data[1000:1064] not in on_disk.read_bytes()
            with db.session_scope() as session:
                whole = media.open_for(admin, session=session, tenant_id=tenant_id, message_id=row.id)
                assert b"".join(whole.chunks) == data and not whole.partial
                part = media.open_for(admin, session=session, tenant_id=tenant_id, message_id=row.id, start=100, end=199)
                assert b"".join(part.chunks) == data[100:200] and part.partial
                with pytest.raises(storage.RangeNotSatisfiable):
                    media.open_for(admin, session=session, tenant_id=tenant_id, message_id=row.id, start=len(data) + 5)
        # Another firm's member: not found.
        with db.session_scope() as session:
            other = f.make_tenant(session)
            stranger = f.principal_of(f.make_user(session, other, Role.OWNER))
        with db.session_scope() as session:
            with pytest.raises(NotFound):
                media.open_for(stranger, session=session, tenant_id=other.id, message_id=rows["M0"].id)
            with pytest.raises(NotFound):
                media.open_for(stranger, session=session, tenant_id=tenant_id, message_id=rows["M0"].id)
            public = store.get_messages(session=session, tenant_id=tenant_id, actor=admin)
        assert {m.wa_message_id: m.media_state for m in public.data} == {"M0": "stored", "M1": "stored", "M2": "stored", "BIG": "too_large"}
    finally:
        sidecar.stopping.set()
        await task


async def test_a_failed_download_is_retried_then_waits_for_a_person(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(media, "backoff_delay", lambda attempt, base, cap: 0.05)
    tenant_id, admin = await _linked(data_dir)
    files = _files(data_dir / "phone")
    path, mime = files["notice.pdf"]
    root = data_dir / "whatsapp" / "simulator"
    enqueue_command(tenant_id, "fail_downloads", root=root, count=media.AUTO_ATTEMPTS + 1)
    sidecar = simulated_sidecar(data_dir, "w-media", health_interval=0.1)
    task = asyncio.create_task(sidecar.run())
    try:
        enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, wa_message_id="PDF", media_file=str(path), media_mime=mime)
        row = await _until(lambda: (r := _rows(tenant_id).get("PDF")) and r.media_state == media.FAILED and r, 20)
        assert row.media_attempts == media.AUTO_ATTEMPTS and row.blob_id is None
        # A person retries; a second retry of a file no longer failed is refused.
        with db.session_scope() as session:
            media.retry(session=session, tenant_id=tenant_id, actor=admin, message_id=row.id)
        with db.session_scope() as session:
            with pytest.raises(Conflict):
                media.retry(session=session, tenant_id=tenant_id, actor=admin, message_id=row.id)
        # One more failure is still queued in the simulator: retried with backoff, then stored.
        row = await _until(lambda: (r := _rows(tenant_id)["PDF"]).media_state == media.STORED and r, 20)
        assert _blob(row).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    finally:
        sidecar.stopping.set()
        await task


async def test_over_the_firm_limit_is_refused_with_its_reason(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATHEEQ_WHATSAPP_MEDIA_QUOTA_MB", "0.2")
    tenant_id, _admin = await _linked(data_dir)
    files = _files(data_dir / "phone")
    root = data_dir / "whatsapp" / "simulator"
    sidecar = simulated_sidecar(data_dir, "w-media", health_interval=0.1)
    task = asyncio.create_task(sidecar.run())
    try:
        enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, wa_message_id="A", media_file=str(files["photo.png"][0]))
        await _until(lambda: (r := _rows(tenant_id).get("A")) and r.media_state == media.STORED)
        enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, wa_message_id="B", media_file=str(files["notice.pdf"][0]))
        row = await _until(lambda: (r := _rows(tenant_id).get("B")) and r.media_state != media.PENDING and r)
        assert row.media_state == media.OVER_QUOTA and row.blob_id is None
    finally:
        sidecar.stopping.set()
        await task


async def test_neonize_media_messages_are_described_and_fetched_with_download_any(engine: Engine, data_dir: Path) -> None:
    pdf = b"%PDF-1.7\n" + os.urandom(5000)
    document = Message(documentMessage=DocumentMessage(fileName="court notice.pdf", mimetype="application/pdf", fileLength=len(pdf), caption="the notice"))
    voice = Message(audioMessage=AudioMessage(mimetype="audio/ogg; codecs=opus", PTT=True, fileLength=4000))
    name, mime, size, ref = media_of(document)  # type: ignore[misc]
    assert (name, mime, size) == ("court notice.pdf", "application/pdf", len(pdf))
    assert message_of_ref(ref).documentMessage.fileName == "court notice.pdf"
    assert media_of(voice)[:3] == ("audio.ogg", "audio/ogg", 4000)  # type: ignore[index]
    assert media_of(Message(conversation="text only")) is None

    class Client:
        me = None
        asked: list[Message] = []

        async def download_any(self, message: Message, path: str | None = None) -> bytes:
            self.asked.append(message)
            return pdf

    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, admin = await _held_sidecar(data_dir)
        client = Client()
        gateway._clients[tenant_id] = client  # type: ignore[assignment]
        source = MessageSource(Chat=_jid(PHONE), Sender=_jid(PHONE), IsFromMe=False)
        await gateway.dispatch(tenant_id, client, MessageEv(Info=MessageInfo(MessageSource=source, ID="DOC1", Timestamp=1767225600), Message=document))
        row = await _until(lambda: (r := _rows(tenant_id).get("DOC1")) and r.media_state == media.STORED and r)
        assert (row.media_name, row.body, row.media_size, _blob(row).sha256) == ("court notice.pdf", "the notice", len(pdf), hashlib.sha256(pdf).hexdigest())
        assert client.asked[0].documentMessage.fileName == "court notice.pdf"
        # The reference (it holds WhatsApp's media key) is kept encrypted.
        assert ref not in (row.media_ref_encrypted or "")
        gateway._clients.pop(tenant_id)
        await sidecar.shutdown()
        with db.session_scope() as session:
            stream = media.open_for(admin, session=session, tenant_id=tenant_id, message_id=row.id)
            assert b"".join(stream.chunks) == pdf and stream.content_type == "application/pdf"
            assert storage.default_store().exists(session.get(Blob, row.blob_id).storage_key)  # type: ignore[union-attr]
            assert session.get(Tenant, tenant_id) is not None and isinstance(admin, Principal)


async def test_an_agent_sends_a_file_through_the_outbox_and_the_phone_gets_the_same_bytes(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from services.errors import Invalid
    from services.models import MessageStatus, WhatsappSend
    from services.whatsapp import outbox_files

    monkeypatch.setenv("WATHEEQ_WHATSAPP_MEDIA_MAX_MB", "1")
    tenant_id, admin = await _linked(data_dir)
    pdf = b"%PDF-1.4\n" + os.urandom(700_000)
    sidecar = simulated_sidecar(data_dir, "w-out")
    task = asyncio.create_task(sidecar.run())
    try:
        # Connected by THIS sidecar: the row may still say CONNECTED from the linking one
        # until this one claims the line and reconnects it.
        # Its own client up (sidecar.tenants), not only its claim: the row's CONNECTED can be the
        # linking sidecar's until this one has dialled, and a send in between is refused.
        await _until(lambda: (rt := sidecar.tenants.get(tenant_id)) is not None and rt.connected and _connected_by(tenant_id, "w-out"))
        with db.session_scope() as session:
            queued = outbox_files.send_file(
                session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to="0507778899", body="the signed contract"),
                filename="contract.pdf", mime="application/pdf", chunks=[pdf[:300_000], pdf[300_000:]],
            )
        assert queued.status == MessageStatus.PENDING and queued.media_sha256 == hashlib.sha256(pdf).hexdigest() and queued.message_type == "document"
        log = data_dir / "whatsapp" / "simulator" / "sent" / f"tenant-{tenant_id}.jsonl"
        record = await _until(lambda: log.exists() and [json.loads(line) for line in log.read_text().splitlines() if "media_sha256" in line])
        assert record[0]["media_sha256"] == hashlib.sha256(pdf).hexdigest() and record[0]["body"] == "the signed contract"
        assert record[0]["media_name"] == "contract.pdf" and record[0]["media_mime"] == "application/pdf"
        received = data_dir / "whatsapp" / "simulator" / "received-media" / f"tenant-{tenant_id}" / record[0]["media_sha256"]
        assert received.read_bytes() == pdf
        await _until(lambda: _rows(tenant_id)[record[0]["wa_message_id"]].status == MessageStatus.SENT)
        # Over the per-file limit: refused with the reason, nothing queued or kept.
        with pytest.raises(Invalid, match="larger than the 1 MB limit"):
            with db.session_scope() as session:
                outbox_files.send_file(
                    session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to="0507778899", body=""),
                    filename="big.bin", mime=None, chunks=iter([os.urandom(600_000), os.urandom(600_000)]),
                )
        assert len(_rows(tenant_id)) == 1
        assert len(list((data_dir / "store").rglob("*.wqs"))) == 1
    finally:
        sidecar.stopping.set()
        await task


def _connected_by(tenant_id: int, worker_id: str) -> bool:
    from services.models import WhatsappSession, WhatsappStatus

    with db.session_scope() as session:
        row = session.exec(select(WhatsappSession).where(WhatsappSession.tenant_id == tenant_id)).first()
        return row is not None and row.worker_id == worker_id and row.status == WhatsappStatus.CONNECTED


def _status_connected(tenant_id: int, admin) -> bool:
    from services.models import WhatsappStatus

    with db.session_scope() as session:
        return store.get_session_status(session=session, tenant_id=tenant_id, actor=admin).status == WhatsappStatus.CONNECTED


async def test_a_received_file_is_stored_a_chunk_at_a_time_and_an_oversized_one_is_not_read_to_its_end(
        engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sidecar never holds a received file whole: the simulator streams it from the phone's
    file and the store encrypts what it is handed, 1 MB at a time; a file over the limit stops
    being read at the first chunk past the limit."""
    from services.whatsapp.gateway import MEDIA_CHUNK

    monkeypatch.setenv("WATHEEQ_WHATSAPP_MEDIA_MAX_MB", "3")
    tenant_id, _admin = await _linked(data_dir)
    phone = data_dir / "phone"
    phone.mkdir(parents=True)
    (phone / "bundle.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(5 * MEDIA_CHUNK // 2))
    (phone / "huge.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(12 * MEDIA_CHUNK))
    root = data_dir / "whatsapp" / "simulator"
    sidecar = simulated_sidecar(data_dir, "w-stream", health_interval=0.1)
    seen: dict[str, list[int]] = {}
    real_put = storage.LocalEncryptedStore.put

    def put(self, key, chunks, *, purpose):
        sizes = seen.setdefault(key, [])

        def measured():
            for chunk in chunks:
                sizes.append(len(chunk))
                yield chunk

        return real_put(self, key, measured(), purpose=purpose)

    monkeypatch.setattr(storage.LocalEncryptedStore, "put", put)
    task = asyncio.create_task(sidecar.run())
    try:
        # The huge file's message declares 1 MB (a sender may): only the download finds it out.
        for name, declared in (("bundle.pdf", None), ("huge.pdf", MEDIA_CHUNK)):
            enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, wa_message_id=name, message_type="document",
                            media_file=str(phone / name), media_mime="application/pdf", media_size=declared)
        rows = await _until(lambda: (r := _rows(tenant_id)) and len(r) == 2 and all(m.media_state != media.PENDING for m in r.values()) and r)
    finally:
        sidecar.stopping.set()
        await task
    bundle, huge = rows["bundle.pdf"], rows["huge.pdf"]
    assert bundle.media_state == media.STORED and _blob(bundle).sha256 == hashlib.sha256((phone / "bundle.pdf").read_bytes()).hexdigest()
    assert huge.media_state == media.TOO_LARGE and huge.blob_id is None
    by_message = {key.rsplit("/m", 1)[1]: sizes for key, sizes in seen.items()}
    assert max(by_message[str(bundle.id)]) <= MEDIA_CHUNK and sum(by_message[str(bundle.id)]) == (phone / "bundle.pdf").stat().st_size
    # 3 MB limit: the fourth chunk read is the first past it; the store got the three before
    # it, nothing after it was read, and the partial file was dropped.
    assert by_message[str(huge.id)] == [MEDIA_CHUNK] * 3
    assert not [p for p in (data_dir / "store").rglob("*") if p.is_file() and p.name.startswith(".")]
