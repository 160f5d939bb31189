"""A case's files: a received WhatsApp file saved to a client's case without copying it, listed,
read back by range, kept from deletion while a case holds it, and sent back to the client through
the WhatsApp outbox; another firm's case or message is not found."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services import blobs, case_files, storage, whatsapp
from services.errors import Conflict, Invalid, NotFound
from services.models import (
    AuditEvent,
    Blob,
    CaseFile,
    CaseFileSend,
    MessageDirection,
    MessageStatus,
    Role,
    WhatsappDesiredState,
    WhatsappMessage,
    WhatsappSession,
    WhatsappStatus,
)
from services.whatsapp import delivery, media
from tests import factories as f


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(folder))
    return folder


def _connect(session: Session, tenant) -> None:
    session.add(WhatsappSession(tenant_id=tenant.id, desired_state=WhatsappDesiredState.CONNECTED, status=WhatsappStatus.CONNECTED))
    session.flush()


@pytest.fixture
def world(session: Session):
    firm = f.make_firm(session)
    client = f.make_client(session, firm.tenant, name="Noura", phone="0501112233")
    case = f.make_case(session, firm.tenant, client, title="Lease dispute")
    other_client = f.make_client(session, firm.tenant, name="Fahad", phone="0502223344")
    other_case = f.make_case(session, firm.tenant, other_client, title="Fahad's case")
    data = b"%PDF-1.4\n" + os.urandom(70_000)
    message = f.make_received_file(session, firm.tenant, client, data)
    return firm, client, case, other_case, message, data


def test_saving_a_received_file_to_the_clients_case_points_at_its_blob_and_says_where_it_came_from(session: Session, world) -> None:
    firm, client, case, _, message, data = world
    blob_count = len(session.exec(select(Blob)).all())
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    assert saved.created
    assert (saved.case_id, saved.case_title, saved.name, saved.content_type, saved.size_bytes) == (case.id, "Lease dispute", "notice.pdf", "application/pdf", len(data))
    assert saved.sha256 == hashlib.sha256(data).hexdigest()
    assert (saved.source.value, saved.source_message_id, saved.source_direction, saved.source_number) == ("whatsapp", message.id, "INBOUND", client.phone_e164)
    assert saved.source_at == message.created_at
    assert saved.saved_by_user_id == firm.agent.user_id and saved.saved_by_name == firm.agent.full_name
    # No copy: the case file is the message's blob, and no blob was added.
    row = session.exec(select(CaseFile)).one()
    assert row.blob_id == message.blob_id
    assert len(session.exec(select(Blob)).all()) == blob_count
    listed = case_files.list_case_files(session=session, tenant_id=firm.tenant.id, actor=firm.manager, case_id=case.id)
    assert listed.count == 1 and listed.data[0].id == saved.id
    assert [c.id for c in case_files.list_client_case_files(session=session, tenant_id=firm.tenant.id, actor=firm.agent, client_id=client.id)] == [saved.id]
    # The message log says where the file was saved.
    log = whatsapp.get_messages(session=session, tenant_id=firm.tenant.id, actor=firm.agent)
    assert [(m.id, m.saved_to_cases) for m in log.data] == [(message.id, ["Lease dispute"])]
    session.flush()
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "case.file.save")).all()
    assert [(e.object_id, e.actor_user_id) for e in events] == [(str(saved.id), firm.agent.user_id)]


def test_saving_the_same_file_twice_is_one_case_file(session: Session, world) -> None:
    firm, client, case, _, message, data = world
    first = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    again = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.owner, case_id=case.id, message_id=message.id)
    assert again.id == first.id and not again.created
    # The same bytes sent again in another message: still the one file on the case.
    copy = f.make_received_file(session, firm.tenant, client, data, name="notice (1).pdf")
    third = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=copy.id)
    assert third.id == first.id and not third.created
    assert case_files.list_case_files(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id).count == 1


def test_a_case_file_reads_back_byte_identical_and_by_range(session: Session, world) -> None:
    firm, _, case, _, message, data = world
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    whole = case_files.open_case_file(firm.agent, session=session, tenant_id=firm.tenant.id, case_file_id=saved.id, case_id=case.id)
    assert b"".join(whole.chunks) == data and not whole.partial and whole.filename == "notice.pdf" and whole.content_type == "application/pdf"
    part = case_files.open_case_file(firm.manager, session=session, tenant_id=firm.tenant.id, case_file_id=saved.id, start=100, end=199)
    assert b"".join(part.chunks) == data[100:200] and part.partial and (part.start, part.end, part.size) == (100, 199, len(data))
    with pytest.raises(storage.RangeNotSatisfiable):
        case_files.open_case_file(firm.agent, session=session, tenant_id=firm.tenant.id, case_file_id=saved.id, start=len(data))
    # The file under another case's id: not found.
    other = f.make_case(session, firm.tenant, title="Elsewhere")
    with pytest.raises(NotFound):
        case_files.open_case_file(firm.agent, session=session, tenant_id=firm.tenant.id, case_file_id=saved.id, case_id=other.id)


def test_another_firms_case_or_message_is_not_found_and_nothing_is_saved(session: Session, world) -> None:
    firm, _, case, _, message, _ = world
    rival = f.make_firm(session)
    rival_client = f.make_client(session, rival.tenant, phone="0501112233")
    rival_case = f.make_case(session, rival.tenant, rival_client)
    rival_message = f.make_received_file(session, rival.tenant, rival_client, b"their file")
    with pytest.raises(NotFound):
        case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=rival_case.id, message_id=message.id)
    with pytest.raises(NotFound):
        case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=rival_message.id)
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    # The rival's people see nothing of it, by any id.
    with pytest.raises(NotFound):
        case_files.list_case_files(session=session, tenant_id=rival.tenant.id, actor=rival.owner, case_id=case.id)
    with pytest.raises(NotFound):
        case_files.open_case_file(rival.owner, session=session, tenant_id=rival.tenant.id, case_file_id=saved.id)
    with pytest.raises(NotFound):
        case_files.open_case_file(rival.owner, session=session, tenant_id=firm.tenant.id, case_file_id=saved.id)
    with pytest.raises(NotFound):
        case_files.send_case_file(session=session, tenant_id=rival.tenant.id, actor=rival.owner, case_file_id=saved.id, data=CaseFileSend(to="0501112233"))
    assert len(session.exec(select(CaseFile)).all()) == 1


def test_a_clients_file_goes_only_to_that_clients_cases_and_only_a_stored_file_can_be_saved(session: Session, world) -> None:
    firm, client, case, other_case, message, _ = world
    with pytest.raises(Invalid) as refused:
        case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=other_case.id, message_id=message.id)
    assert refused.value.field == "case_id"
    text = f.make_message(session, firm.tenant, client_id=client.id, body="just text")
    with pytest.raises(Conflict) as no_file:
        case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=text.id)
    assert no_file.value.field == "message_id"
    pending = f.make_message(session, firm.tenant, client_id=client.id, body="", media_state=media.PENDING, media_name="later.pdf")
    with pytest.raises(Conflict):
        case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=pending.id)
    # A number that is no client's: its file may go to any of the firm's cases.
    stranger = f.make_received_file(session, firm.tenant, None, b"from an unknown number", name="id.jpg", mime="image/jpeg")
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=other_case.id, message_id=stranger.id)
    assert saved.source_number == "+966555000111" and saved.content_type == "image/jpeg"
    assert len(session.exec(select(CaseFile)).all()) == 1


def test_a_blob_a_case_keeps_is_not_deleted(session: Session, world, data_dir: Path) -> None:
    firm, _, case, _, message, data = world
    case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    with pytest.raises(Conflict):
        blobs.delete(session=session, tenant_id=firm.tenant.id, blob_id=message.blob_id)
    assert session.get(Blob, message.blob_id) is not None
    blob = session.get(Blob, message.blob_id)
    assert b"".join(storage.default_store().open_range(blob.storage_key, purpose=media.PURPOSE)) == data
    # A blob no case keeps is deleted as before.
    loose = f.make_received_file(session, firm.tenant, None, b"not kept")
    assert blobs.delete(session=session, tenant_id=firm.tenant.id, blob_id=loose.blob_id)


def test_recording_retention_skips_a_file_a_case_keeps(session: Session, world) -> None:
    from datetime import timedelta

    from services.models import CaseFileSource, PbxSettings, utcnow
    from services.pbx import retention

    firm, _, case, _, _, _ = world
    session.add(PbxSettings(tenant_id=firm.tenant.id, host="pbx.test", recording_retention_days=30))
    old = utcnow() - timedelta(days=40)
    kept, loose = (
        f.make_stored_recording(session, f.make_call(session, firm.tenant, agent=firm.agent, started_at=old), os.urandom(2_000)) for _ in range(2)
    )
    blob = session.get(Blob, kept.blob_id)
    # A case keeping a recording's file (the uploads to come point at blobs the same way).
    session.add(CaseFile(tenant_id=firm.tenant.id, case_id=case.id, blob_id=blob.id, name="call.wav", size_bytes=blob.size_bytes, sha256=blob.sha256, source=CaseFileSource.UPLOAD.value))
    session.flush()
    assert retention.purge_expired(session=session, tenant_id=firm.tenant.id) == 1
    session.refresh(kept)
    session.refresh(loose)
    assert kept.blob_id == blob.id and kept.purged_at is None and storage.default_store().exists(blob.storage_key)
    assert loose.blob_id is None and loose.purged_at is not None


def test_sending_a_case_file_queues_it_in_the_outbox_pointing_at_the_same_blob(session: Session, world) -> None:
    firm, client, case, other_case, message, data = world
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    # The line is down: refused, nothing queued.
    with pytest.raises(Conflict):
        case_files.send_case_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_file_id=saved.id, data=CaseFileSend(client_id=client.id))
    _connect(session, firm.tenant)
    usage = media.firm_usage(session=session, tenant_id=firm.tenant.id)
    sent = case_files.send_case_file(
        session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_file_id=saved.id, case_id=case.id, data=CaseFileSend(client_id=client.id, caption="your notice")
    )
    assert (sent.status, sent.direction, sent.client_id, sent.body, sent.message_type) == (MessageStatus.PENDING, MessageDirection.OUTBOUND, client.id, "your notice", "document")
    assert (sent.media_name, sent.media_mime, sent.media_size, sent.media_sha256) == ("notice.pdf", "application/pdf", len(data), hashlib.sha256(data).hexdigest())
    row = session.get(WhatsappMessage, sent.id)
    assert row.blob_id == message.blob_id and row.media_state == media.STORED
    # Sending it again stored nothing more.
    assert media.firm_usage(session=session, tenant_id=firm.tenant.id) == usage
    # The sidecar's sender gets the blob's key and how it is sealed, and reads the same bytes.
    (outbound,) = [o for o in delivery.next_outbound(session=session, tenant_id=firm.tenant.id) if o.id == sent.id]
    assert outbound.media_key and outbound.media_purpose == media.PURPOSE
    assert b"".join(storage.default_store().open_range(outbound.media_key, purpose=outbound.media_purpose)) == data
    # To a number it goes as well; to another client it is refused (their case is not this one).
    by_number = case_files.send_case_file(session=session, tenant_id=firm.tenant.id, actor=firm.manager, case_file_id=saved.id, data=CaseFileSend(to="0501112233"))
    assert by_number.remote_e164 == client.phone_e164 and by_number.client_id == client.id
    with pytest.raises(Invalid) as wrong:
        case_files.send_case_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_file_id=saved.id, data=CaseFileSend(client_id=other_case.client_id))
    assert wrong.value.field == "case_file_id"
    with pytest.raises(Invalid) as neither:
        case_files.send_case_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_file_id=saved.id, data=CaseFileSend())
    assert neither.value.field == "to"
    with pytest.raises(NotFound):
        case_files.send_case_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_file_id=saved.id, case_id=other_case.id, data=CaseFileSend(client_id=client.id))
    outbound_count = len(session.exec(select(WhatsappMessage).where(WhatsappMessage.direction == MessageDirection.OUTBOUND)).all())
    assert outbound_count == 2


def test_a_case_document_over_the_per_file_limit_is_refused_when_sent(session: Session, world, monkeypatch: pytest.MonkeyPatch) -> None:
    firm, client, case, _, message, _ = world
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    _connect(session, firm.tenant)
    monkeypatch.setenv("WATHEEQ_WHATSAPP_MEDIA_MAX_MB", "0.01")
    with pytest.raises(Invalid) as refused:
        case_files.send_case_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_file_id=saved.id, data=CaseFileSend(client_id=client.id))
    assert refused.value.field == "file" and "limit" in refused.value.message
    assert not session.exec(select(WhatsappMessage).where(WhatsappMessage.direction == MessageDirection.OUTBOUND)).all()


def test_deleting_a_case_removes_its_files_but_not_the_message_or_its_blob(session: Session, world) -> None:
    firm, _, case, _, message, _ = world
    case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.agent, case_id=case.id, message_id=message.id)
    session.delete(case)
    session.flush()
    session.expire_all()
    assert not session.exec(select(CaseFile)).all()
    assert session.get(WhatsappMessage, message.id).blob_id is not None
    assert blobs.delete(session=session, tenant_id=firm.tenant.id, blob_id=message.blob_id)


@pytest.mark.parametrize("role", list(Role))
def test_every_member_may_save_and_read_case_files(session: Session, world, role: Role) -> None:
    firm, _, case, _, message, data = world
    saved = case_files.save_message_file(session=session, tenant_id=firm.tenant.id, actor=firm.principal(role), case_id=case.id, message_id=message.id)
    stream = case_files.open_case_file(firm.principal(role), session=session, tenant_id=firm.tenant.id, case_file_id=saved.id)
    assert b"".join(stream.chunks) == data
