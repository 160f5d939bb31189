"""The neonize gateway: neonize's own event objects in, the right database change out; and the
real neonize client, offline, failing to dial without taking the sidecar down."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.models import MessageStatus, Role, WhatsappDesiredState, WhatsappMessage, WhatsappSend, WhatsappSession, WhatsappStatus
from services.whatsapp import failures, store
from services.whatsapp.neonize_gateway import NeonizeGateway, describe_message, parse_jid
from services.whatsapp.runtime import HeldTenant
from services.whatsapp.sidecar import Sidecar
from tests import factories as f
from tests.whatsapp.conftest import fast_settings

from neonize.aioze.events import ConnectedEv, LoggedOutEv, MessageEv, PairStatusEv, QREv, ReceiptEv  # isort: skip
from neonize.proto.Neonize_pb2 import JID, ConnectFailureReason, MessageInfo, MessageSource, PairStatus, Receipt  # isort: skip
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import DocumentMessage, ImageMessage, Message  # isort: skip


def _jid(user: str, server: str = "s.whatsapp.net", device: int = 0) -> JID:
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


async def _held_sidecar(data_dir: Path) -> tuple[Sidecar, NeonizeGateway, int, object]:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
        store.init_session(session=session, tenant_id=tenant.id, actor=admin)
        tenant_id = tenant.id
    sidecar = Sidecar(
        worker_id="neo",
        settings=fast_settings(),
        gateway_factory=lambda sink: NeonizeGateway(sink, database_url="sqlite:///unused.db", folder=data_dir / "whatsapp", settle_seconds=0.05),
    )
    with db.session_scope() as session:
        (lease,) = store.restore_active_sessions(session=session, worker_id="neo", lease_seconds=30)
    sidecar.tenants[tenant_id] = HeldTenant(lease=lease)
    sidecar._writer.start()
    return sidecar, sidecar.gateway, tenant_id, admin  # type: ignore[return-value]


def _row(tenant_id: int) -> WhatsappSession:
    with db.session_scope() as session:
        return session.exec(select(WhatsappSession).where(WhatsappSession.tenant_id == tenant_id)).one()


async def test_neonize_events_each_produce_their_database_change(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, admin = await _held_sidecar(data_dir)
        with db.session_scope() as session:
            tenant = session.get(__import__("services.models", fromlist=["Tenant"]).Tenant, tenant_id)
            client_id = f.make_client(session, tenant, name="Lama", phone="0507778899").id

        await gateway.dispatch(tenant_id, None, QREv(Codes=["2@ref,noise,identity,adv", "2@next"]))
        row = _row(tenant_id)
        assert row.status == WhatsappStatus.QR_PENDING and row.qr_payload == "2@ref,noise,identity,adv"

        await gateway.dispatch(tenant_id, None, PairStatusEv(ID=_jid("966501112233", device=7), Status=PairStatus.SUCCESS, BusinessName="Al-Firm"))
        row = _row(tenant_id)
        assert row.device_jid == "966501112233:7@s.whatsapp.net" and row.phone_number == "+966501112233"
        assert row.push_name == "Al-Firm" and row.qr_payload is None

        await gateway.dispatch(tenant_id, None, ConnectedEv(status=True))
        assert _row(tenant_id).status == WhatsappStatus.CONNECTED

        source = MessageSource(Chat=_jid("966507778899"), Sender=_jid("966507778899"), IsFromMe=False, IsGroup=False)
        text = MessageEv(Info=MessageInfo(MessageSource=source, ID="TXT1", Pushname="Lama", Timestamp=1767225600), Message=Message(conversation="Hello"))
        await gateway.dispatch(tenant_id, None, text)
        await gateway.dispatch(tenant_id, None, text)
        lid_source = MessageSource(Chat=_jid("123456789", "lid"), Sender=_jid("123456789", "lid"), SenderAlt=_jid("966507778899"), IsFromMe=False)
        image = MessageEv(
            Info=MessageInfo(MessageSource=lid_source, ID="IMG1", Timestamp=1767225660),
            Message=Message(imageMessage=ImageMessage(caption="the signed page", mimetype="image/jpeg")),
        )
        await gateway.dispatch(tenant_id, None, image)
        with db.session_scope() as session:
            inbound = session.exec(select(WhatsappMessage).order_by(WhatsappMessage.id)).all()
        assert [(m.wa_message_id, m.message_type, m.body, m.remote_e164, m.client_id) for m in inbound] == [
            ("TXT1", "text", "Hello", "+966507778899", client_id),
            ("IMG1", "image", "the signed page", "+966507778899", client_id),
        ]
        assert inbound[0].created_at.year == 2026

        with db.session_scope() as session:
            out = store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(client_id=client_id, body="Hi"))
            store.mark_sent(session=session, tenant_id=tenant_id, message_id=out.id, wa_message_id="3EB0OUT")
        receipt_source = MessageSource(Chat=_jid("966507778899"), Sender=_jid("966507778899"), IsFromMe=False)
        await gateway.dispatch(tenant_id, None, ReceiptEv(MessageSource=receipt_source, MessageIDs=["3EB0OUT"], Timestamp=1767225700, Type=Receipt.DELIVERED))
        with db.session_scope() as session:
            assert session.exec(select(WhatsappMessage).where(WhatsappMessage.id == out.id)).one().status == MessageStatus.DELIVERED
        await gateway.dispatch(tenant_id, None, ReceiptEv(MessageSource=receipt_source, MessageIDs=["3EB0OUT"], Timestamp=1767225800, Type=Receipt.READ))
        with db.session_scope() as session:
            assert session.exec(select(WhatsappMessage).where(WhatsappMessage.id == out.id)).one().status == MessageStatus.READ

        store_file = data_dir / "whatsapp" / f"tenant-{tenant_id}.sqlite3"
        store_file.parent.mkdir(parents=True, exist_ok=True)
        store_file.write_bytes(b"keys")
        await gateway.dispatch(tenant_id, None, LoggedOutEv(OnConnect=False, Reason=ConnectFailureReason.LOGGED_OUT))
        row = _row(tenant_id)
        assert row.status == WhatsappStatus.DISCONNECTED and row.desired_state == WhatsappDesiredState.DISCONNECTED
        assert row.device_jid is None and "unlinked" in (row.last_error or "") and row.error_code == "logged_out"
        assert not store_file.exists()
        await sidecar.shutdown()


async def test_a_lid_sender_without_alt_is_resolved_through_the_client(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, _ = await _held_sidecar(data_dir)

        class LidResolvingClient:
            me = None

            async def get_pn_from_lid(self, jid: JID) -> JID:
                assert jid.Server == "lid"
                return _jid("966509990000")

        source = MessageSource(Chat=_jid("42", "lid"), Sender=_jid("42", "lid"), IsFromMe=False)
        event = MessageEv(Info=MessageInfo(MessageSource=source, ID="LID1", Timestamp=1767225600), Message=Message(conversation="hi"))
        await gateway.dispatch(tenant_id, LidResolvingClient(), event)
        with db.session_scope() as session:
            assert session.exec(select(WhatsappMessage.remote_e164)).one() == "+966509990000"
        await sidecar.shutdown()


def test_message_types_and_captions_are_described() -> None:
    assert describe_message(Message(conversation="plain")) == ("text", "plain")
    assert describe_message(Message(documentMessage=DocumentMessage(fileName="brief.pdf"))) == ("document", "brief.pdf")
    wrapped = Message()
    wrapped.ephemeralMessage.message.imageMessage.caption = "inside"
    assert describe_message(wrapped) == ("image", "inside")
    voice = Message()
    voice.audioMessage.PTT = True
    assert describe_message(voice) == ("voice", "")
    assert describe_message(Message()) is None


def test_device_jids_round_trip() -> None:
    from neonize.utils.jid import Jid2String

    for text in ("966501112233:7@s.whatsapp.net", "966501112233@s.whatsapp.net", "42@lid"):
        assert Jid2String(parse_jid(text)) == text


async def test_real_neonize_offline_fails_to_dial_and_shows_error_with_next_retry(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through a proxy on a closed loopback port: the dial fails here, at once, without the
    # test sending anything (not even a name lookup) off this machine.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("WATHEEQ_WHATSAPP_PROXY", f"http://127.0.0.1:{closed}")
    async with asyncio.timeout(60):
        with db.session_scope() as session:
            tenant = f.make_tenant(session)
            admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
            store.init_session(session=session, tenant_id=tenant.id, actor=admin)
            tenant_id = tenant.id
        sidecar = Sidecar(
            worker_id="offline",
            settings=fast_settings(backoff_base=1.0, backoff_cap=2.0),
            gateway_factory=lambda sink: NeonizeGateway(sink, database_url="sqlite:///unused.db", folder=data_dir / "whatsapp", settle_seconds=0.2),
        )
        task = asyncio.create_task(sidecar.run())
        while True:
            row = _row(tenant_id)
            if row.status == WhatsappStatus.ERROR:
                break
            await asyncio.sleep(0.05)
        # The raw Go error is kept for the details; the class is what people see.
        assert "dial" in (row.last_error or "")
        assert f"127.0.0.1:{closed}" in (row.last_error or "")
        assert row.error_code == "proxy_unreachable"
        assert row.next_retry_at is not None and row.retry_count == 1
        with db.session_scope() as session:
            status = store.get_session_status(session=session, tenant_id=tenant_id, actor=admin)
            assert store.get_error_detail(session=session, tenant_id=tenant_id, actor=admin) == row.last_error
        assert status.status == WhatsappStatus.ERROR and status.next_retry_at is not None
        assert status.error_message == failures.sentence("proxy_unreachable")
        assert "127.0.0.1" not in status.model_dump_json() and "dial" not in status.model_dump_json()
        # The retry comes when it was scheduled, fails the same way, and nothing crashed.
        while _row(tenant_id).retry_count < 2:
            assert not task.done()
            await asyncio.sleep(0.05)
        assert _row(tenant_id).error_code == "proxy_unreachable"
        assert not task.done()
        sidecar.stopping.set()
        await task
