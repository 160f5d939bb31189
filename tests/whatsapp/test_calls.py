"""Incoming WhatsApp voice calls: kept once in the client's chat and timeline, the hook told,
and, when the firm chooses, declined with the automatic text sent through the outbox; on the
simulator and with neonize's own CallOffer event."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.models import MessageDirection, MessageStatus, Tenant, WhatsappGuardrailsUpdate, WhatsappMessage
from services.whatsapp import calls, guardrails, store
from services.whatsapp.simulator import enqueue_command
from tests import factories as f
from tests.whatsapp.conftest import simulated_sidecar
from tests.whatsapp.test_guardrails import _statuses, _tenant_and_admin
from tests.whatsapp.test_neonize_gateway import _held_sidecar, _jid
from tests.whatsapp.test_sidecar import _link, _sim_root, _stop, _until

from neonize.aioze.events import CallOfferEv  # isort: skip
from neonize.proto.Neonize_pb2 import BasicCallMeta  # isort: skip


async def test_a_call_is_kept_once_in_the_clients_timeline_and_declined_with_the_text_when_chosen(engine: Engine, data_dir: Path) -> None:
    heard: list[calls.IncomingCall] = []
    unsubscribe = calls.subscribe(lambda *, session, call: heard.append(call))
    try:
        async with asyncio.timeout(40):
            tenant_id, admin = _tenant_and_admin()
            with db.session_scope() as session:
                client_id = f.make_client(session, session.get(Tenant, tenant_id), name="Huda", phone="0507770001").id
            sidecar = simulated_sidecar(data_dir, "c1")
            task = asyncio.create_task(sidecar.run())
            await _link(data_dir, sidecar, tenant_id, admin)
            sim = sidecar.gateway  # type: ignore[attr-defined]

            # The firm takes calls (the default): kept, not declined, nothing sent.
            enqueue_command(tenant_id, "call", root=_sim_root(data_dir), from_phone="+966507770001", call_id="CALL1")
            enqueue_command(tenant_id, "call", root=_sim_root(data_dir), from_phone="+966507770001", call_id="CALL1")
            await _until(lambda: len(heard) == 1)
            await asyncio.sleep(0.3)
            assert len(heard) == 1 and not heard[0].rejected and heard[0].client_id == client_id and heard[0].call_id == "CALL1"
            assert not sim.rejected_calls

            with db.session_scope() as session:
                guardrails.set_first_contact_cap(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappGuardrailsUpdate(reject_calls=True))
            enqueue_command(tenant_id, "call", root=_sim_root(data_dir), from_phone="+966507770001", call_id="CALL2")
            await _until(lambda: any(m.direction == MessageDirection.OUTBOUND and m.status == MessageStatus.SENT for m in _statuses(tenant_id)))
            assert sim.rejected_calls == [(tenant_id, "966507770001@s.whatsapp.net", "CALL2")]
            assert len(heard) == 2 and heard[1].rejected and heard[1].reply_message_id is not None
            reply = [m for m in sim.sent if m.tenant_id == tenant_id]
            assert [(m.chat_jid, m.body) for m in reply] == [("966507770001@s.whatsapp.net", calls.AUTO_REPLY)]

            with db.session_scope() as session:
                rows = session.exec(
                    select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.message_type == "call")
                ).all()
                assert sorted(r.wa_message_id for r in rows) == ["call-CALL1", "call-CALL2"]
                assert {r.client_id for r in rows} == {client_id}
                # The client's timeline reads the client's messages: both calls are there.
                page = store.get_messages(session=session, tenant_id=tenant_id, actor=admin, client_id=client_id)
                assert sum(1 for m in page.data if m.message_type == "call") == 2
                status = store.get_session_status(session=session, tenant_id=tenant_id, actor=admin)
                assert status.reject_calls is True
            await _stop(sidecar, task)
    finally:
        unsubscribe()


async def test_neonize_call_offer_is_recorded_as_a_call_of_the_callers_chat(engine: Engine, data_dir: Path) -> None:
    heard: list[calls.IncomingCall] = []
    unsubscribe = calls.subscribe(lambda *, session, call: heard.append(call))
    try:
        async with asyncio.timeout(20):
            sidecar, gateway, tenant_id, _admin = await _held_sidecar(data_dir)
            meta = BasicCallMeta(callID="A1B2C3", timestamp=1767225600, callCreator=_jid("966507770002", device=3))
            getattr(meta, "from").CopyFrom(_jid("966507770002", device=3))
            await gateway.dispatch(tenant_id, None, CallOfferEv(basicCallMeta=meta))
            await gateway.dispatch(tenant_id, None, CallOfferEv(basicCallMeta=meta))
            with db.session_scope() as session:
                rows = session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id)).all()
            assert [(r.wa_message_id, r.message_type, r.chat_jid, r.remote_e164) for r in rows] == [
                ("call-A1B2C3", "call", "966507770002@s.whatsapp.net", "+966507770002")
            ]
            assert len(heard) == 1 and heard[0].call_id == "A1B2C3" and not heard[0].rejected
            await sidecar.shutdown()
    finally:
        unsubscribe()
