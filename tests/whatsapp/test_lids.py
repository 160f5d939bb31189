"""One identity per person: a sender known only by LID becomes its phone number's conversation
(and client) once the mapping is known, and what was split is merged with no message lost or
doubled; through neonize's own events and through the sidecar on the simulator."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.models import Role, Tenant, WhatsappInbound, WhatsappLidMap, WhatsappMessage
from services.whatsapp import delivery, lids, store
from services.whatsapp.simulator import enqueue_command
from tests import factories as f
from tests.whatsapp.conftest import simulated_sidecar
from tests.whatsapp.test_neonize_gateway import _held_sidecar, _jid
from tests.whatsapp.test_send_crash import _linked

from neonize.aioze.events import HistorySyncEv, MessageEv  # isort: skip
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource  # isort: skip
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message  # isort: skip
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import Conversation, HistorySync, HistorySyncMsg  # isort: skip

LID = "274719512345678"
PHONE = "966507778899"


class UnknownLidClient:
    """A client that has not learned the LID yet (whatsmeow answers with an error)."""

    me = None

    async def get_pn_from_lid(self, jid: JID) -> JID:
        raise RuntimeError("no mapping")


def _rows(tenant_id: int) -> list[tuple[str, str, str | None, int | None, str]]:
    with db.session_scope() as session:
        rows = session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id).order_by(WhatsappMessage.wa_message_id)).all()
        return [(m.wa_message_id, m.chat_jid, m.remote_e164, m.client_id, m.body) for m in rows]


def _client(tenant_id: int) -> int:
    with db.session_scope() as session:
        return f.make_client(session, session.get(Tenant, tenant_id), name="Lama", phone="0507778899").id


def _lid_only(wa_id: str, body: str) -> MessageEv:
    source = MessageSource(Chat=_jid(LID, "lid"), Sender=_jid(LID, "lid", device=3), IsFromMe=False)
    return MessageEv(Info=MessageInfo(MessageSource=source, ID=wa_id, Timestamp=1767225600), Message=Message(conversation=body))


async def test_lid_messages_merge_into_the_phone_conversation_when_the_mapping_arrives(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, _ = await _held_sidecar(data_dir)
        client_id = _client(tenant_id)
        await gateway.dispatch(tenant_id, UnknownLidClient(), _lid_only("L1", "first, by LID"))
        await gateway.dispatch(tenant_id, UnknownLidClient(), _lid_only("L2", "second, by LID"))
        # Split: a LID conversation with no number and no client.
        assert _rows(tenant_id) == [("L1", f"{LID}@lid", None, None, "first, by LID"), ("L2", f"{LID}@lid", None, None, "second, by LID")]
        # The phone writes from its number, with the LID as the alternative id: the mapping.
        source = MessageSource(Chat=_jid(PHONE), Sender=_jid(PHONE), SenderAlt=_jid(LID, "lid"), IsFromMe=False)
        by_phone = MessageEv(Info=MessageInfo(MessageSource=source, ID="P1", Timestamp=1767225700), Message=Message(conversation="by number"))
        await gateway.dispatch(tenant_id, UnknownLidClient(), by_phone)
        chat = f"{PHONE}@s.whatsapp.net"
        assert _rows(tenant_id) == [
            ("L1", chat, "+" + PHONE, client_id, "first, by LID"),
            ("L2", chat, "+" + PHONE, client_id, "second, by LID"),
            ("P1", chat, "+" + PHONE, client_id, "by number"),
        ]
        # Later LID-only messages go straight to the phone's conversation; a redelivered one
        # (history sync of the LID chat) is not doubled.
        await gateway.dispatch(tenant_id, UnknownLidClient(), _lid_only("L3", "third, by LID"))
        conversation = Conversation(ID=f"{LID}@lid", lidJID=f"{LID}@lid")
        for wa_id, body in (("L1", "first, by LID"), ("L3", "third, by LID")):
            entry = HistorySyncMsg()
            entry.message.key.ID = wa_id
            entry.message.key.remoteJID = f"{LID}@lid"
            entry.message.message.conversation = body
            entry.message.messageTimestamp = 1767225600
            conversation.messages.append(entry)
        await gateway.dispatch(tenant_id, None, HistorySyncEv(Data=HistorySync(syncType=HistorySync.RECENT, conversations=[conversation])))
        rows = _rows(tenant_id)
        assert [r[0] for r in rows] == ["L1", "L2", "L3", "P1"]
        assert {r[1] for r in rows} == {chat} and {r[3] for r in rows} == {client_id}
        with db.session_scope() as session:
            assert session.exec(select(WhatsappLidMap.lid, WhatsappLidMap.e164)).all() == [(f"{LID}@lid", "+" + PHONE)]
        await sidecar.shutdown()


async def test_a_history_sync_conversation_naming_both_ids_is_a_mapping(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, _ = await _held_sidecar(data_dir)
        await gateway.dispatch(tenant_id, UnknownLidClient(), _lid_only("L1", "by LID"))
        conversation = Conversation(ID=f"{LID}@lid", lidJID=f"{LID}@lid", pnJID=f"{PHONE}@s.whatsapp.net")
        entry = HistorySyncMsg()
        entry.message.key.ID = "H1"
        entry.message.key.remoteJID = f"{LID}@lid"
        entry.message.message.conversation = "older"
        entry.message.messageTimestamp = 1767225500
        conversation.messages.append(entry)
        await gateway.dispatch(tenant_id, None, HistorySyncEv(Data=HistorySync(syncType=HistorySync.RECENT, conversations=[conversation])))
        assert {(r[0], r[1], r[2]) for r in _rows(tenant_id)} == {("L1", f"{PHONE}@s.whatsapp.net", "+" + PHONE), ("H1", f"{PHONE}@s.whatsapp.net", "+" + PHONE)}
        await sidecar.shutdown()


def test_learning_twice_or_a_conflicting_number_changes_nothing_more(engine: Engine) -> None:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        other = f.make_tenant(session)
        lid_msg = WhatsappInbound(wa_message_id="L1", chat_jid=f"{LID}@lid", remote_e164=None, sender_lid=f"{LID}@lid", body="x")
        delivery.store_inbound(session=session, tenant_id=tenant.id, messages=[lid_msg])
        delivery.store_inbound(session=session, tenant_id=other.id, messages=[lid_msg])
        assert lids.learn(session=session, tenant_id=tenant.id, mappings={f"{LID}@lid": "+" + PHONE}) == 1
        assert lids.learn(session=session, tenant_id=tenant.id, mappings={f"{LID}@lid": "+" + PHONE}) == 0
        # WhatsApp ties a LID to one account: a different number later does not move anything.
        assert lids.learn(session=session, tenant_id=tenant.id, mappings={f"{LID}:7@lid": "+966500000000"}) == 0
        assert lids.unresolved(session=session, tenant_id=tenant.id) == []
        # The other firm's copy is its own: still split until that firm learns the mapping.
        assert lids.unresolved(session=session, tenant_id=other.id) == [f"{LID}@lid"]
        rows = session.exec(select(WhatsappMessage.tenant_id, WhatsappMessage.chat_jid).order_by(WhatsappMessage.tenant_id)).all()
        assert rows == [(tenant.id, f"{PHONE}@s.whatsapp.net"), (other.id, f"{LID}@lid")]


async def test_the_sidecar_asks_the_client_about_lid_senders_and_merges_them(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(40):
        tenant_id, admin = await _linked(data_dir)
        client_id = _client(tenant_id)
        root = data_dir / "whatsapp" / "simulator"
        sidecar = simulated_sidecar(data_dir, "w-lid", health_interval=0.1)
        task = asyncio.create_task(sidecar.run())
        enqueue_command(tenant_id, "inbound", root=root, from_lid=LID, body="hidden sender", wa_message_id="S1")
        enqueue_command(tenant_id, "inbound", root=root, from_phone=PHONE, body="by number", wa_message_id="S2")
        while len(_rows(tenant_id)) < 2:
            await asyncio.sleep(0.02)
        assert {r[1] for r in _rows(tenant_id)} == {f"{LID}@lid", f"{PHONE}@s.whatsapp.net"}
        # The client learns the mapping; the sidecar's next health round asks and merges.
        enqueue_command(tenant_id, "lid_mapping", root=root, lid=LID, phone=PHONE)
        while {r[1] for r in _rows(tenant_id)} != {f"{PHONE}@s.whatsapp.net"}:
            await asyncio.sleep(0.05)
        assert [(r[0], r[2], r[3]) for r in _rows(tenant_id)] == [("S1", "+" + PHONE, client_id), ("S2", "+" + PHONE, client_id)]
        with db.session_scope() as session:
            page = store.get_messages(session=session, tenant_id=tenant_id, actor=admin, client_id=client_id)
        assert page.count == 2
        sidecar.stopping.set()
        await task
