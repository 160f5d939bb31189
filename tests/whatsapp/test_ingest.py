"""No gaps: live, offline-sync and history-sync messages stored once each (neonize's own events),
the offline sync counted, per-firm counters, and messages that cannot be stored retried, then
kept raw as dead letters an owner sees and can store again, never dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.errors import Conflict, Forbidden, NotFound
from services.models import Role, Tenant, WhatsappDeadLetter, WhatsappInbound, WhatsappMessage, WhatsappSession
from services.tenancy import tenant_select
from services.whatsapp import delivery, ingest, inbound, store
from services.whatsapp.simulator import enqueue_command
from tests import factories as f
from tests.whatsapp.test_neonize_gateway import _held_sidecar, _jid
from tests.whatsapp.test_send_crash import _linked
from tests.whatsapp.conftest import simulated_sidecar

from neonize.aioze.events import ConnectedEv, DisconnectedEv, HistorySyncEv, MessageEv, OfflineSyncCompletedEv, OfflineSyncPreviewEv  # isort: skip
from neonize.proto.Neonize_pb2 import MessageInfo, MessageSource  # isort: skip
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message  # isort: skip
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import Conversation, HistorySync, HistorySyncMsg  # isort: skip


def _live(wa_id: str, body: str, phone: str = "966507778899") -> MessageEv:
    source = MessageSource(Chat=_jid(phone), Sender=_jid(phone), IsFromMe=False, IsGroup=False)
    return MessageEv(Info=MessageInfo(MessageSource=source, ID=wa_id, Timestamp=1767225600), Message=Message(conversation=body))


def _history(*items: tuple[str, str], phone: str = "966507778899") -> HistorySyncEv:
    conversation = Conversation(ID=f"{phone}@s.whatsapp.net")
    for wa_id, body in items:
        entry = HistorySyncMsg()
        entry.message.key.ID = wa_id
        entry.message.key.remoteJID = f"{phone}@s.whatsapp.net"
        entry.message.key.fromMe = False
        entry.message.message.conversation = body
        entry.message.messageTimestamp = 1767225500
        conversation.messages.append(entry)
    return HistorySyncEv(Data=HistorySync(syncType=HistorySync.RECENT, conversations=[conversation]))


def _session_row(tenant_id: int) -> WhatsappSession:
    with db.session_scope() as session:
        row = session.exec(tenant_select(WhatsappSession, tenant_id)).one()
        session.expunge(row)
        return row


def _messages(tenant_id: int) -> list[tuple[str, str]]:
    with db.session_scope() as session:
        rows = session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id).order_by(WhatsappMessage.id)).all()
        return [(m.wa_message_id, m.body) for m in rows]


async def test_live_offline_and_history_messages_are_stored_once_and_counted(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, admin = await _held_sidecar(data_dir)
        await gateway.dispatch(tenant_id, None, ConnectedEv(status=True))
        await gateway.dispatch(tenant_id, None, OfflineSyncPreviewEv(Total=3, Message=3))
        # What arrived while the line was away: three messages, one of them twice.
        for wa_id, body in (("OFF1", "one"), ("OFF2", "two"), ("OFF2", "two"), ("OFF3", "three")):
            await gateway.dispatch(tenant_id, None, _live(wa_id, body))
        await gateway.dispatch(tenant_id, None, OfflineSyncCompletedEv(Count=4))
        row = _session_row(tenant_id)
        assert row.offline_sync_messages == 4 and row.offline_sync_at is not None
        # Live after the sync, then a history sync that repeats two of the messages.
        await gateway.dispatch(tenant_id, None, _live("LIVE1", "live"))
        await gateway.dispatch(tenant_id, None, _history(("OFF1", "one"), ("LIVE1", "live"), ("OLD1", "from before")))
        assert sorted(_messages(tenant_id)) == sorted(
            [("OFF1", "one"), ("OFF2", "two"), ("OFF3", "three"), ("LIVE1", "live"), ("OLD1", "from before")]
        )
        with db.session_scope() as session:
            stats = ingest.get_stats(session=session, tenant_id=tenant_id, actor=admin)
        assert (stats.received, stats.stored, stats.failed, stats.dead_letters) == (8, 5, 0, 0)
        assert stats.offline_sync_messages == 4
        # A reconnect inside the running client starts a new count.
        await gateway.dispatch(tenant_id, None, DisconnectedEv())
        await gateway.dispatch(tenant_id, None, OfflineSyncCompletedEv(Count=0))
        assert _session_row(tenant_id).offline_sync_messages == 0
        await sidecar.shutdown()


async def test_a_message_that_cannot_be_stored_is_retried_then_kept_raw_and_the_owner_can_store_it(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with asyncio.timeout(30):
        sidecar, gateway, tenant_id, admin = await _held_sidecar(data_dir)
        sidecar._writer.retry_delay = 0.01
        real = delivery.store_inbound
        calls: dict[str, int] = {}
        broken = {"FLAKY": 2, "BROKEN": 10**6}

        def store_inbound(*, session, tenant_id, messages):
            for m in messages:
                calls[m.wa_message_id] = calls.get(m.wa_message_id, 0) + 1
                if calls[m.wa_message_id] <= broken.get(m.wa_message_id, 0):
                    raise RuntimeError("database hiccup")
            return real(session=session, tenant_id=tenant_id, messages=messages)

        monkeypatch.setattr(delivery, "store_inbound", store_inbound)
        messages = [
            WhatsappInbound(wa_message_id="GOOD", chat_jid="966507778899@s.whatsapp.net", remote_e164="+966507778899", body="fine"),
            WhatsappInbound(wa_message_id="FLAKY", chat_jid="966507778899@s.whatsapp.net", remote_e164="+966507778899", body="second try"),
            WhatsappInbound(wa_message_id="BROKEN", chat_jid="966507778899@s.whatsapp.net", remote_e164="+966507778899", body="keep me"),
        ]
        await sidecar.on_inbound(tenant_id, messages)
        # Too long for a message row: a real, permanent failure of the store itself.
        long_id = "X" * 200
        await sidecar.on_inbound(tenant_id, [WhatsappInbound(wa_message_id=long_id, chat_jid="966507778899@s.whatsapp.net", remote_e164=None, body="odd")])
        assert sorted(_messages(tenant_id)) == [("FLAKY", "second try"), ("GOOD", "fine")]
        # FLAKY failed in the batch and in its firm's part, then was stored on its own; BROKEN was
        # tried on its own as many times as the writer tries before it keeps a dead letter.
        assert calls["FLAKY"] == 3 and calls["BROKEN"] == sidecar._writer.attempts
        with db.session_scope() as session:
            page = ingest.list_dead_letters(session=session, tenant_id=tenant_id, actor=admin)
            stats = ingest.get_stats(session=session, tenant_id=tenant_id, actor=admin)
        assert page.count == 2
        by_id = {d.wa_message_id: d for d in page.data}
        assert set(by_id) == {"BROKEN", long_id}
        assert WhatsappInbound.model_validate_json(by_id["BROKEN"].payload).body == "keep me"
        assert by_id["BROKEN"].attempts == sidecar._writer.attempts and "database hiccup" in by_id["BROKEN"].error
        assert (stats.received, stats.stored, stats.failed, stats.dead_letters) == (4, 2, 2, 2)

        with db.session_scope() as session:
            other = f.make_tenant(session)
            other_admin = f.principal_of(f.make_user(session, other, Role.ADMIN))
            agent = f.principal_of(f.make_user(session, session.get(Tenant, tenant_id), Role.AGENT))
        with db.session_scope() as session:
            with pytest.raises(Forbidden):
                ingest.list_dead_letters(session=session, tenant_id=tenant_id, actor=agent)
            assert ingest.list_dead_letters(session=session, tenant_id=other.id, actor=other_admin).count == 0
            with pytest.raises(NotFound):
                ingest.retry_dead_letter(session=session, tenant_id=other.id, actor=other_admin, dead_letter_id=by_id["BROKEN"].id)
        # Still broken: 409, and it stays.
        with pytest.raises(Conflict):
            with db.session_scope() as session:
                ingest.retry_dead_letter(session=session, tenant_id=tenant_id, actor=admin, dead_letter_id=by_id["BROKEN"].id)
        broken.clear()
        with db.session_scope() as session:
            assert ingest.retry_dead_letter(session=session, tenant_id=tenant_id, actor=admin, dead_letter_id=by_id["BROKEN"].id)
        with db.session_scope() as session:
            stats = ingest.get_stats(session=session, tenant_id=tenant_id, actor=admin)
        assert ("BROKEN", "keep me") in _messages(tenant_id)
        assert (stats.stored, stats.failed, stats.dead_letters) == (3, 1, 1)
        await sidecar.shutdown()


async def test_dead_letters_are_spooled_to_disk_while_the_database_refuses_them(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session_scope() as session:
        tenant_id = f.make_tenant(session).id
    spool = data_dir / "spool.jsonl"
    writer = inbound.InboundWriter(lambda fn, *a: asyncio.to_thread(fn, *a), attempts=1, retry_delay=0, spool=spool)

    def refuse(*_a, **_k):
        raise RuntimeError("database down")

    monkeypatch.setattr(ingest, "store_counted", refuse)
    monkeypatch.setattr(ingest, "dead_letter", refuse)
    writer.start()
    message = WhatsappInbound(wa_message_id="SPOOLED", chat_jid="966507778899@s.whatsapp.net", remote_e164="+966507778899", body="safe")
    await asyncio.wait_for(writer.store(tenant_id, [message]), 10)
    await writer.close()
    assert "SPOOLED" in spool.read_text()
    monkeypatch.undo()
    again = inbound.InboundWriter(lambda fn, *a: asyncio.to_thread(fn, *a), spool=spool)
    again.start()
    for _ in range(200):
        if not spool.exists():
            break
        await asyncio.sleep(0.02)
    await again.close()
    assert not spool.exists()
    with db.session_scope() as session:
        (letter,) = session.exec(select(WhatsappDeadLetter)).all()
        assert letter.tenant_id == tenant_id and WhatsappInbound.model_validate_json(letter.payload).body == "safe"


async def test_messages_sent_while_the_sidecar_was_down_arrive_as_its_offline_sync(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(40):
        tenant_id, admin = await _linked(data_dir)
        root = data_dir / "whatsapp" / "simulator"
        for i in range(5):
            enqueue_command(tenant_id, "inbound", root=root, from_phone="966507778899", body=f"while away {i}", wa_message_id=f"AWAY{i}")
        enqueue_command(
            tenant_id,
            "history_sync",
            root=root,
            messages=[{"from_phone": "966507778899", "body": "while away 0", "wa_message_id": "AWAY0"}, {"from_phone": "966507778899", "body": "older", "wa_message_id": "OLD"}],
        )
        sidecar = simulated_sidecar(data_dir, "w-back")
        task = asyncio.create_task(sidecar.run())
        while _session_row(tenant_id).offline_sync_messages is None:
            await asyncio.sleep(0.02)
        assert _session_row(tenant_id).offline_sync_messages == 7
        assert sorted(w for w, _ in _messages(tenant_id)) == ["AWAY0", "AWAY1", "AWAY2", "AWAY3", "AWAY4", "OLD"]
        with db.session_scope() as session:
            stats = ingest.get_stats(session=session, tenant_id=tenant_id, actor=admin)
        assert (stats.received, stats.stored, stats.failed) == (7, 6, 0)
        sidecar.stopping.set()
        await task
        with db.session_scope() as session:
            assert store.get_session_status(session=session, tenant_id=tenant_id, actor=admin).phone_number
