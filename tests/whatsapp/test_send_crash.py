"""A sidecar that dies in the middle of a send never makes WhatsApp deliver a message twice.

Each test plays one crash: the sidecar hands a message to the simulated WhatsApp and dies
before (or after) WhatsApp has it, without recording the outcome; a restarted sidecar then
finds the message SENDING and settles it. The simulator's delivery log is WhatsApp's side of
the story, so a duplicate is counted where a firm's client would see it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.errors import Conflict
from services.models import AuditEvent, MessageStatus, Role, WhatsappMessage, WhatsappSend
from services.whatsapp import store
from services.whatsapp.gateway import GatewayError
from services.whatsapp.sidecar import Sidecar
from services.whatsapp.simulator import SimulatorGateway
from tests import factories as f
from tests.whatsapp.conftest import fast_settings
from tests.whatsapp.sidecar_support import deliveries, statuses_by_body
from tests.whatsapp.test_sidecar import _link, _stop, _tenant_and_admin, _until

NUMBER = "0501234567"


def _sidecar(data: Path, *, client_ids: bool = True) -> Sidecar:
    # One worker id throughout: a restarted worker (the supervisor's job) takes its lease back at once.
    return Sidecar(
        worker_id="w1",
        settings=fast_settings(),
        gateway_factory=lambda sink: SimulatorGateway(sink, root=data / "whatsapp" / "simulator", poll_interval=0.02, client_ids=client_ids),
    )


def _queue(tenant_id: int, admin: object, bodies: list[str]) -> list[int]:
    with db.session_scope() as session:
        return [store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to=NUMBER, body=b)).id for b in bodies]


async def _linked(data: Path) -> tuple[int, object]:
    tenant_id, admin = _tenant_and_admin()
    first = _sidecar(data)
    task = asyncio.create_task(first.run())
    await _link(data, first, tenant_id, admin)
    await _stop(first, task)
    return tenant_id, admin


async def _run_until_it_dies_in_a_send(data: Path, tenant_id: int, doomed: str, *, deliver_first: bool, client_ids: bool) -> None:
    """A sidecar sends until the ``doomed`` message, which it hands over (delivered or not) and
    then never hears back from: the process is dead as far as the database can tell."""
    sidecar = _sidecar(data, client_ids=client_ids)
    gateway: SimulatorGateway = sidecar.gateway  # type: ignore[assignment]
    real_send = gateway.send_text
    handed_over = asyncio.Event()

    async def send_text(tenant: int, chat: str, body: str, *, message_id: str | None = None) -> str:
        if body != doomed:
            return await real_send(tenant, chat, body, message_id=message_id)
        if deliver_first:
            await real_send(tenant, chat, body, message_id=message_id)
        handed_over.set()
        await asyncio.Event().wait()  # the crash: no answer, ever
        raise AssertionError("unreachable")

    gateway.send_text = send_text  # type: ignore[method-assign]
    task = asyncio.create_task(sidecar.run())
    await asyncio.wait_for(handed_over.wait(), timeout=10)
    # Die like SIGKILL: nothing is written, no lease is released, no sender finishes.
    sidecar.shutdown = gateway.close  # type: ignore[method-assign]
    for running in list(sidecar._background):
        running.cancel()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("deliver_first", [True, False], ids=["after-delivery", "before-delivery"])
async def test_a_send_cut_by_a_crash_is_settled_from_whatsapps_record_and_delivered_once(
    engine: Engine, data_dir: Path, deliver_first: bool
) -> None:
    async with asyncio.timeout(60):
        tenant_id, admin = await _linked(data_dir)
        bodies = [f"m{i}" for i in range(6)]
        _queue(tenant_id, admin, bodies)
        await _run_until_it_dies_in_a_send(data_dir, tenant_id, "m2", deliver_first=deliver_first, client_ids=True)
        assert statuses_by_body(tenant_id)["m2"] == MessageStatus.SENDING
        restarted = _sidecar(data_dir)
        task = asyncio.create_task(restarted.run())
        await _until(lambda: all(s == MessageStatus.SENT for s in statuses_by_body(tenant_id).values()), timeout=20)
        await _stop(restarted, task)
        assert deliveries(data_dir, tenant_id) == Counter({b: 1 for b in bodies})


async def test_without_client_ids_a_send_cut_by_a_crash_becomes_uncertain_and_is_not_resent(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(60):
        tenant_id, admin = await _linked(data_dir)
        bodies = [f"m{i}" for i in range(5)]
        ids = dict(zip(bodies, _queue(tenant_id, admin, bodies)))
        await _run_until_it_dies_in_a_send(data_dir, tenant_id, "m1", deliver_first=True, client_ids=False)
        restarted = _sidecar(data_dir, client_ids=False)
        task = asyncio.create_task(restarted.run())
        await _until(lambda: sum(s == MessageStatus.SENT for s in statuses_by_body(tenant_id).values()) == 4, timeout=20)
        await asyncio.sleep(0.5)  # a few more ticks: the uncertain one must stay unsent
        await _stop(restarted, task)
        assert statuses_by_body(tenant_id)["m1"] == MessageStatus.UNCERTAIN
        assert deliveries(data_dir, tenant_id) == Counter({b: 1 for b in bodies})
        with db.session_scope() as session:
            listed = {m.body: m for m in store.get_messages(session=session, tenant_id=tenant_id, actor=admin).data}
        assert listed["m1"].error_code == "send_uncertain"
        assert listed["m1"].error is not None and "may not have been sent" in listed["m1"].error
        assert "attempt" not in listed["m1"].error  # the raw detail stays in the database
        # A person looked at the phone: it did arrive.
        with db.session_scope() as session:
            confirmed = store.confirm_message_sent(session=session, tenant_id=tenant_id, actor=admin, message_id=ids["m1"])
        assert confirmed.status == MessageStatus.SENT and confirmed.sent_at is not None and confirmed.error is None


async def test_a_person_sends_an_uncertain_message_again_and_it_goes_once_more(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(60):
        tenant_id, admin = await _linked(data_dir)
        (message_id,) = _queue(tenant_id, admin, ["contract ready"])
        await _run_until_it_dies_in_a_send(data_dir, tenant_id, "contract ready", deliver_first=False, client_ids=False)
        restarted = _sidecar(data_dir, client_ids=False)
        task = asyncio.create_task(restarted.run())
        await _until(lambda: statuses_by_body(tenant_id)["contract ready"] == MessageStatus.UNCERTAIN, timeout=20)
        assert deliveries(data_dir, tenant_id) == Counter()
        with db.session_scope() as session:
            again = store.resend_message(session=session, tenant_id=tenant_id, actor=admin, message_id=message_id)
        assert again.status == MessageStatus.PENDING
        await _until(lambda: statuses_by_body(tenant_id)["contract ready"] == MessageStatus.SENT, timeout=20)
        await _stop(restarted, task)
        assert deliveries(data_dir, tenant_id) == Counter({"contract ready": 1})
        with db.session_scope() as session:
            actions = session.exec(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant_id)).all()
        assert "whatsapp.message.resend" in actions


async def test_a_send_that_timed_out_waiting_for_whatsapp_is_uncertain_not_retried(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(60):
        tenant_id, admin = await _linked(data_dir)
        _queue(tenant_id, admin, ["a", "b"])
        sidecar = _sidecar(data_dir, client_ids=False)
        gateway: SimulatorGateway = sidecar.gateway  # type: ignore[assignment]
        real_send = gateway.send_text
        calls: list[str] = []

        async def send_text(tenant: int, chat: str, body: str, *, message_id: str | None = None) -> str:
            calls.append(body)
            if body == "a":
                await real_send(tenant, chat, body, message_id=message_id)
                raise GatewayError("timed out waiting for message send response", maybe_sent=True)
            return await real_send(tenant, chat, body, message_id=message_id)

        gateway.send_text = send_text  # type: ignore[method-assign]
        task = asyncio.create_task(sidecar.run())
        await _until(lambda: statuses_by_body(tenant_id) == {"a": MessageStatus.UNCERTAIN, "b": MessageStatus.SENT}, timeout=20)
        await asyncio.sleep(0.3)
        await _stop(sidecar, task)
        assert calls == ["a", "b"]


async def test_a_receipt_settles_an_uncertain_message(engine: Engine, data_dir: Path) -> None:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        message = WhatsappMessage(
            tenant_id=tenant.id, direction="OUTBOUND", status=MessageStatus.SENDING, chat_jid="966501234567@s.whatsapp.net", body="x", wa_message_id="3EB0AA"
        )
        session.add(message)
        session.flush()
        store.mark_uncertain(session=session, tenant_id=tenant.id, message_id=message.id, detail="cut off")
        moved = store.apply_receipt(session=session, tenant_id=tenant.id, wa_message_ids=["3EB0AA"], status=MessageStatus.DELIVERED)
        session.refresh(message)
    assert moved == 1
    assert message.status == MessageStatus.DELIVERED and message.error_code is None and message.sent_at is not None


def test_only_an_uncertain_message_can_be_resent_or_marked_sent(engine: Engine) -> None:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
        other = f.make_tenant(session)
        stranger = f.principal_of(f.make_user(session, other, Role.ADMIN))
        sent = WhatsappMessage(tenant_id=tenant.id, direction="OUTBOUND", status=MessageStatus.SENT, chat_jid="1@s.whatsapp.net", body="x")
        unsure = WhatsappMessage(tenant_id=tenant.id, direction="OUTBOUND", status=MessageStatus.UNCERTAIN, chat_jid="1@s.whatsapp.net", body="y")
        session.add_all([sent, unsure])
        session.flush()
        ids: dict[str, Any] = {"sent": sent.id, "unsure": unsure.id, "tenant": tenant.id, "other": other.id}
    with db.session_scope() as session, pytest.raises(Conflict):
        store.resend_message(session=session, tenant_id=ids["tenant"], actor=agent, message_id=ids["sent"])
    from services.errors import NotFound

    with db.session_scope() as session, pytest.raises(NotFound):
        store.confirm_message_sent(session=session, tenant_id=ids["other"], actor=stranger, message_id=ids["unsure"])
    with db.session_scope() as session:
        assert store.resend_message(session=session, tenant_id=ids["tenant"], actor=agent, message_id=ids["unsure"]).status == MessageStatus.PENDING
