"""Incoming WhatsApp voice calls: kept once in the client's chat and timeline, counted once on
the callback queue, the hook told, and, when the firm chooses, declined with the automatic text
sent through the outbox; on the simulator and with neonize's own CallOffer event."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sqlalchemy.engine import Engine
from sqlmodel import select

from services import callbacks, db
from services.models import (
    CallbackChannel,
    CallbackMiss,
    CallbackOutcome,
    MessageDirection,
    MessageStatus,
    Tenant,
    WhatsappGuardrailsUpdate,
    WhatsappInbound,
    WhatsappMessage,
)
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


def _queue(tenant_id: int, admin) -> list:
    with db.session_scope() as session:
        return callbacks.list_callbacks(session=session, tenant_id=tenant_id, actor=admin, include_closed=True)


async def test_every_call_nobody_takes_counts_once_on_the_callback_queue_across_a_restart(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(60):
        tenant_id, admin = _tenant_and_admin()
        first = simulated_sidecar(data_dir, "q1")
        task = asyncio.create_task(first.run())
        await _link(data_dir, first, tenant_id, admin)
        root = _sim_root(data_dir)
        # Two calls from one number (the first one delivered twice) and one from another number.
        enqueue_command(tenant_id, "call", root=root, from_phone="+966507770003", call_id="Q1")
        enqueue_command(tenant_id, "call", root=root, from_phone="+966507770003", call_id="Q1")
        enqueue_command(tenant_id, "call", root=root, from_phone="+966507770003", call_id="Q2")
        enqueue_command(tenant_id, "call", root=root, from_phone="+966507770004", call_id="Q3")
        await _until(lambda: sum(i.miss_count for i in _queue(tenant_id, admin)) == 3)
        await _stop(first, task)

        # The sidecar comes back and WhatsApp delivers the calls of the offline time again.
        second = simulated_sidecar(data_dir, "q2")
        task = asyncio.create_task(second.run())
        await _until(lambda: tenant_id in second.tenants and second.tenants[tenant_id].connected)
        for call_id, phone in (("Q1", "+966507770003"), ("Q3", "+966507770004")):
            enqueue_command(tenant_id, "call", root=root, from_phone=phone, call_id=call_id)
        enqueue_command(tenant_id, "call", root=root, from_phone="+966507770004", call_id="Q4")
        await _until(lambda: sum(i.miss_count for i in _queue(tenant_id, admin)) >= 4)
        await asyncio.sleep(0.5)  # the redelivered calls have had their time
        await _stop(second, task)

    items = _queue(tenant_id, admin)
    assert [(i.number_e164, i.channel, i.miss_count, i.closed_at) for i in items] == [
        ("+966507770003", CallbackChannel.WHATSAPP, 2, None),
        ("+966507770004", CallbackChannel.WHATSAPP, 2, None),
    ]
    with db.session_scope() as session:
        counted = session.exec(select(CallbackMiss).where(CallbackMiss.tenant_id == tenant_id)).all()
        calls_kept = session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.message_type == "call")).all()
    assert sorted(m.miss_key for m in counted) == ["wa:Q1", "wa:Q2", "wa:Q3", "wa:Q4"]
    assert sorted(m.wa_message_id for m in calls_kept) == ["call-Q1", "call-Q2", "call-Q3", "call-Q4"]


def _call_event(call_id: str, phone: str = "+966507770005", chat_jid: str | None = None) -> WhatsappInbound:
    return WhatsappInbound(
        wa_message_id=f"call-{call_id}", chat_jid=chat_jid or f"{phone[1:]}@s.whatsapp.net", remote_e164=phone if chat_jid is None else None,
        message_type="call", timestamp=datetime.now(timezone.utc) - timedelta(minutes=3),
    )


def test_the_call_and_its_queue_item_are_one_transaction_and_a_closed_item_is_not_reopened(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant_id, admin = _tenant_and_admin()

    def broken(*args, **kwargs):
        raise RuntimeError("the queue is down")

    # The queue fails: the call is not kept either (the sidecar's writer retries it).
    with monkeypatch.context() as m:
        m.setattr(callbacks, "record_whatsapp_call", broken)
        with pytest.raises(RuntimeError), db.session_scope() as session:
            calls.record_call(session=session, tenant_id=tenant_id, call=_call_event("T1"))
    with db.session_scope() as session:
        assert session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id)).all() == []
    assert _queue(tenant_id, admin) == []

    with db.session_scope() as session:
        incoming = calls.record_call(session=session, tenant_id=tenant_id, call=_call_event("T1"))
    assert incoming is not None and incoming.callback_id is not None
    [item] = _queue(tenant_id, admin)
    assert (item.id, item.channel, item.miss_count, item.first_missed_at) == (incoming.callback_id, CallbackChannel.WHATSAPP, 1, incoming.at)
    with db.session_scope() as session:
        callbacks.close(session=session, tenant_id=tenant_id, actor=admin, callback_id=item.id, outcome=CallbackOutcome.REACHED)
    # Seen again after the item was closed: neither stored nor counted, no new item opens.
    with db.session_scope() as session:
        assert calls.record_call(session=session, tenant_id=tenant_id, call=_call_event("T1")) is None
        assert callbacks.record_whatsapp_call(session, tenant_id, number="+966507770005", call_id="T1", at=incoming.at) == item.id
    assert [(i.id, i.miss_count, i.outcome) for i in _queue(tenant_id, admin)] == [(item.id, 1, CallbackOutcome.REACHED)]
    # A caller known only by an unmapped LID is kept in the chat but has no number to call back.
    with db.session_scope() as session:
        lid_call = calls.record_call(session=session, tenant_id=tenant_id, call=_call_event("T2", chat_jid="123456789012345@lid"))
    assert lid_call is not None and lid_call.callback_id is None
    assert len(_queue(tenant_id, admin)) == 1
