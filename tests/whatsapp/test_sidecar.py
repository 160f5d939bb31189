"""The sidecar against the simulator gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.models import MessageStatus, Principal, Role, WhatsappDesiredState, WhatsappMessage, WhatsappSend, WhatsappStatus, WhatsappStatusPublic
from services.whatsapp import failures, leases, store
from services.whatsapp.sidecar import Sidecar, backoff_delay
from services.whatsapp.simulator import SimulatorGateway, enqueue_command
from tests import factories as f
from tests.whatsapp.conftest import simulated_sidecar

PHONE = "+966501112233"


def _tenant_and_admin() -> tuple[int, object]:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
        return tenant.id, admin


def _status(tenant_id: int) -> WhatsappStatusPublic:
    with db.session_scope() as session:
        # The sidecar's view: everything, the QR payload included (as an owner sees it).
        return store.get_session_status(
            session=session, tenant_id=tenant_id, actor=Principal(user_id=0, tenant_id=tenant_id, role=Role.OWNER)
        )


async def _until(check: Callable[[], object], timeout: float = 5.0) -> object:
    async with asyncio.timeout(timeout):
        while True:
            value = await asyncio.to_thread(check)
            if value:
                return value
            await asyncio.sleep(0.02)


def _sim_root(data: Path) -> Path:
    return data / "whatsapp" / "simulator"


async def _link(data: Path, sidecar: Sidecar, tenant_id: int, admin: object) -> None:
    with db.session_scope() as session:
        store.init_session(session=session, tenant_id=tenant_id, actor=admin)
    await _until(lambda: _status(tenant_id).status == WhatsappStatus.QR_PENDING)
    enqueue_command(tenant_id, "scan", root=_sim_root(data), phone=PHONE, push_name="Firm Phone")
    await _until(lambda: _status(tenant_id).status == WhatsappStatus.CONNECTED)


async def _stop(sidecar: Sidecar, task: asyncio.Task[None]) -> None:
    sidecar.stopping.set()
    async with asyncio.timeout(10):
        await task


async def test_link_shows_rotating_qr_then_scan_connects_with_the_phone(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1", qr_first=0.3, qr_next=0.3)
        task = asyncio.create_task(sidecar.run())
        with db.session_scope() as session:
            store.init_session(session=session, tenant_id=tenant_id, actor=admin)
        first = await _until(lambda: _status(tenant_id).qr_payload)
        assert str(first).startswith("https://wa.me/settings/linked_devices#2@")
        second = await _until(lambda: (p := _status(tenant_id).qr_payload) and p != first and p)
        assert second != first
        enqueue_command(tenant_id, "scan", root=_sim_root(data_dir), phone=PHONE, push_name="Firm Phone")
        await _until(lambda: _status(tenant_id).status == WhatsappStatus.CONNECTED, timeout=1.5)
        status = _status(tenant_id)
        assert status.phone_number == PHONE and status.push_name == "Firm Phone"
        assert status.qr_payload is None and status.connected_since is not None
        await _stop(sidecar, task)


async def test_restarted_sidecar_restores_the_device_without_a_qr(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        first = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(first.run())
        await _link(data_dir, first, tenant_id, admin)
        await _stop(first, task)
        assert _status(tenant_id).status == WhatsappStatus.CONNECTED
        second = simulated_sidecar(data_dir, "w2")
        task = asyncio.create_task(second.run())
        await _until(lambda: tenant_id in second.tenants and second.tenants[tenant_id].connected)
        assert second.tenants[tenant_id].qr_count == 0
        assert _status(tenant_id).phone_number == PHONE
        await _stop(second, task)


async def test_phone_unlink_disconnects_and_deletes_the_device_store(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        assert sidecar.gateway.has_device_store(tenant_id)
        enqueue_command(tenant_id, "unlink", root=_sim_root(data_dir))
        # The gateway's stop may write DISCONNECTED a moment before the logout's own record
        # (with its reason): wait for that record.
        await _until(lambda: _status(tenant_id).error_code == "logged_out")
        status = _status(tenant_id)
        assert status.status == WhatsappStatus.DISCONNECTED
        assert status.desired_state == WhatsappDesiredState.DISCONNECTED
        assert status.error_code == "logged_out" and status.phone_number is None
        assert status.error_message == failures.sentence("logged_out")
        assert not sidecar.gateway.has_device_store(tenant_id)
        await asyncio.sleep(0.3)
        assert not sidecar.gateway.is_running(tenant_id)
        await _stop(sidecar, task)


async def test_a_tick_during_an_unlink_does_not_start_the_line_again(engine: Engine, data_dir: Path) -> None:
    """The logout stops the client before it records why: a reconcile tick in that moment saw
    a held line not running and started the client again (CONNECTING written over the
    logout's record, until the restarted client was logged out in turn)."""
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        gateway = sidecar.gateway
        stop, start = gateway.stop, gateway.start
        started_after_unlink: list[int] = []

        async def stop_then_tick(tid: int) -> None:
            await stop(tid)
            rt = sidecar.tenants.get(tid)
            if rt is not None:  # the reconcile tick of this very moment
                sidecar._reconcile(tid, rt, time.monotonic(), datetime.now(timezone.utc))
                await asyncio.sleep(0.2)  # whatever it started runs now

        async def counted_start(tid: int, device_jid: str | None) -> None:
            started_after_unlink.append(tid)
            await start(tid, device_jid)

        gateway.stop, gateway.start = stop_then_tick, counted_start  # type: ignore[method-assign]
        enqueue_command(tenant_id, "unlink", root=_sim_root(data_dir))
        await _until(lambda: _status(tenant_id).error_code == "logged_out")
        await asyncio.sleep(0.3)
        assert started_after_unlink == []
        status = _status(tenant_id)
        assert (status.status, status.desired_state) == (WhatsappStatus.DISCONNECTED, WhatsappDesiredState.DISCONNECTED)
        assert not gateway.is_running(tenant_id)
        gateway.stop, gateway.start = stop, start  # type: ignore[method-assign]
        await _stop(sidecar, task)


async def test_admin_disconnect_logs_out_and_deletes_the_device_store(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        with db.session_scope() as session:
            store.disconnect(session=session, tenant_id=tenant_id, actor=admin)
        await _until(lambda: _status(tenant_id).status == WhatsappStatus.DISCONNECTED)
        assert not sidecar.gateway.has_device_store(tenant_id)
        assert not sidecar.gateway.is_running(tenant_id)
        await _stop(sidecar, task)


async def test_gateway_errors_show_error_with_next_retry_then_recover(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1", backoff_base=0.5, backoff_cap=1.0)
        enqueue_command(tenant_id, "fail_connects", root=_sim_root(data_dir), count=2, reason="failed to dial whatsapp web websocket")
        task = asyncio.create_task(sidecar.run())
        with db.session_scope() as session:
            store.init_session(session=session, tenant_id=tenant_id, actor=admin)
        error = await _until(lambda: (s := _status(tenant_id)).status == WhatsappStatus.ERROR and s)
        assert error.error_code == "no_route"
        assert error.error_message == failures.sentence("no_route")
        assert "dial" not in error.model_dump_json()
        assert error.next_retry_at is not None
        await _until(lambda: _status(tenant_id).status == WhatsappStatus.QR_PENDING)
        assert not task.done()
        await _stop(sidecar, task)


async def test_unscanned_qr_expires_and_asks_to_link_again(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1", qr_timeout=0.5)
        task = asyncio.create_task(sidecar.run())
        with db.session_scope() as session:
            store.init_session(session=session, tenant_id=tenant_id, actor=admin)
        await _until(lambda: _status(tenant_id).status == WhatsappStatus.QR_PENDING)
        await _until(lambda: _status(tenant_id).status == WhatsappStatus.DISCONNECTED)
        status = _status(tenant_id)
        assert status.error_code == "qr_timeout"
        assert status.desired_state == WhatsappDesiredState.DISCONNECTED
        assert not sidecar.gateway.is_running(tenant_id)
        await _stop(sidecar, task)


def _recorded_qr_codes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every QR payload the sidecar writes to the session row, in order."""
    written: list[str] = []
    record_qr = leases.record_qr

    def spy(**kwargs: object) -> bool:
        written.append(str(kwargs["payload"]))
        return record_qr(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(leases, "record_qr", spy)
    return written


async def _gave_up_pairing(sidecar: Sidecar, tenant_id: int) -> None:
    """The pairing ended as a QR timeout that waits for an admin: nothing runs, nothing is held."""
    status = _status(tenant_id)
    assert status.status == WhatsappStatus.DISCONNECTED and status.error_code == "qr_timeout"
    assert status.desired_state == WhatsappDesiredState.DISCONNECTED and status.qr_payload is None
    assert status.error_message == failures.sentence("qr_timeout")
    await _until(lambda: not sidecar.gateway.is_running(tenant_id) and tenant_id not in sidecar.tenants)
    assert not sidecar.gateway.has_device_store(tenant_id)


async def test_bounded_qr_cycles_expire_the_pairing(engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The phone would go on offering codes (10); the sidecar shows its bound (3) and gives up.
    written = _recorded_qr_codes(monkeypatch)
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1", qr_first=0.05, qr_next=0.05, max_qr_codes=3)
        sidecar.gateway.qr_codes = 10  # type: ignore[attr-defined]
        task = asyncio.create_task(sidecar.run())
        with db.session_scope() as session:
            store.init_session(session=session, tenant_id=tenant_id, actor=admin)
        await _until(lambda: _status(tenant_id).error_code == "qr_timeout")
        assert len(written) == 3 and len(set(written)) == 3
        await _gave_up_pairing(sidecar, tenant_id)
        # Ten cycles' time later no code has been shown again and the line still waits for an admin.
        await asyncio.sleep(0.5)
        assert len(written) == 3
        assert _status(tenant_id).status == WhatsappStatus.DISCONNECTED
        await _stop(sidecar, task)


async def test_codes_that_run_out_on_the_phone_side_expire_after_the_qr_timeout(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Like whatsmeow, the simulated client stops offering codes after its cycles (2) and goes
    # silent; the sidecar's timeout, not a further code, ends the pairing.
    written = _recorded_qr_codes(monkeypatch)
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1", qr_first=0.05, qr_next=0.05, max_qr_codes=6, qr_timeout=0.8)
        sidecar.gateway.qr_codes = 2  # type: ignore[attr-defined]
        task = asyncio.create_task(sidecar.run())
        with db.session_scope() as session:
            store.init_session(session=session, tenant_id=tenant_id, actor=admin)
        await _until(lambda: len(written) == 2)
        await asyncio.sleep(0.3)
        # Silence: still the second code on screen, no third one, not yet expired.
        status = _status(tenant_id)
        assert len(written) == 2 and status.status == WhatsappStatus.QR_PENDING and status.qr_payload == written[-1]
        await _until(lambda: _status(tenant_id).error_code == "qr_timeout", timeout=5.0)
        assert len(written) == 2
        await _gave_up_pairing(sidecar, tenant_id)
        await _stop(sidecar, task)


async def test_zombie_connection_is_restarted_by_the_health_watchdog(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        gateway: SimulatorGateway = sidecar.gateway  # type: ignore[assignment]
        gateway.drop(tenant_id)
        assert not await gateway.is_alive(tenant_id)
        await _until(lambda: gateway.is_running(tenant_id) and gateway._clients[tenant_id].state == "connected")
        await _until(lambda: _status(tenant_id).status == WhatsappStatus.CONNECTED)
        await _stop(sidecar, task)


async def test_inbound_messages_and_receipts_reach_the_database(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        with db.session_scope() as session:
            tenant = session.get(__import__("services.models", fromlist=["Tenant"]).Tenant, tenant_id)
            client_id = f.make_client(session, tenant, name="Saad", phone="0504445566").id
        sidecar = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        root = _sim_root(data_dir)
        enqueue_command(tenant_id, "inbound", root=root, from_phone="966504445566", body="Salam", wa_message_id="IN1")
        enqueue_command(tenant_id, "inbound", root=root, from_phone="966504445566", body="Salam", wa_message_id="IN1")
        enqueue_command(tenant_id, "inbound", root=root, from_phone="+966504445566", body="contract.pdf", message_type="document", wa_message_id="IN2")
        with db.session_scope() as session:
            out = store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(client_id=client_id, body="Welcome"))
        sent = await _until(lambda: (m := _message(out.id)).status == MessageStatus.SENT and m)
        enqueue_command(tenant_id, "receipt", root=root, wa_message_ids=[sent.wa_message_id], status="READ")
        await _until(lambda: _message(out.id).status == MessageStatus.READ)
        with db.session_scope() as session:
            inbound = session.exec(select(WhatsappMessage).where(WhatsappMessage.direction == "INBOUND").order_by(WhatsappMessage.id)).all()
        assert [(m.wa_message_id, m.client_id, m.message_type, m.remote_e164) for m in inbound] == [
            ("IN1", client_id, "text", "+966504445566"),
            ("IN2", client_id, "document", "+966504445566"),
        ]
        await _stop(sidecar, task)


def _message(message_id: int) -> WhatsappMessage:
    with db.session_scope() as session:
        return session.exec(select(WhatsappMessage).where(WhatsappMessage.id == message_id)).one()


async def test_messages_queued_while_the_sidecar_is_down_are_all_sent_in_order_once(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(120):
        tenant_id, admin = _tenant_and_admin()
        first = simulated_sidecar(data_dir, "w1")
        task = asyncio.create_task(first.run())
        await _link(data_dir, first, tenant_id, admin)
        await _stop(first, task)
        numbers = [f"+96650000{i:04d}" for i in range(1, 6)]
        with db.session_scope() as session:
            for i in range(1000):
                store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to=numbers[i % 5], body=f"msg {i}"))
        second = simulated_sidecar(data_dir, "w2")
        enqueue_command(tenant_id, "fail_sends", root=_sim_root(data_dir), count=3, reason="transient")
        task = asyncio.create_task(second.run())

        def all_sent() -> bool:
            with db.session_scope() as session:
                rows = session.exec(select(WhatsappMessage.status)).all()
            return len(rows) == 1000 and all(s == MessageStatus.SENT for s in rows)

        await _until(all_sent, timeout=100)
        sent = second.gateway.sent  # type: ignore[attr-defined]
        assert len(sent) == 1000 and len({m.body for m in sent}) == 1000
        for number in numbers:
            chat = f"{number[1:]}@s.whatsapp.net"
            order = [int(m.body.split()[1]) for m in sent if m.chat_jid == chat]
            assert order == sorted(order) and len(order) == 200
        await _stop(second, task)


async def test_send_rate_is_limited_per_tenant(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(30):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(data_dir, "w1", send_rate=5.0)
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        with db.session_scope() as session:
            for i in range(6):
                store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to="0501234567", body=f"r{i}"))
        started = asyncio.get_running_loop().time()

        def done() -> bool:
            with db.session_scope() as session:
                return all(s == MessageStatus.SENT for s in session.exec(select(WhatsappMessage.status)).all())

        await _until(done, timeout=10)
        assert asyncio.get_running_loop().time() - started >= 0.9  # 6 messages at 5/s: at least 1 s
        await _stop(sidecar, task)


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    for attempt in range(1, 12):
        ceiling = min(300.0, 2.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, 2.0, 300.0) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len({backoff_delay(3, 2.0, 300.0) for _ in range(20)}) > 1


async def test_two_sidecars_share_tenants_and_take_over_a_dead_ones(engine: Engine, data_dir: Path) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("several sidecars share one PostgreSQL; SQLite is a single-host database")
    async with asyncio.timeout(60):
        tenants = []
        for _ in range(6):
            tenant_id, admin = _tenant_and_admin()
            with db.session_scope() as session:
                store.init_session(session=session, tenant_id=tenant_id, actor=admin)
            tenants.append(tenant_id)
        a = simulated_sidecar(data_dir, "A", claim_batch=1, lease_seconds=1.5)
        b = simulated_sidecar(data_dir, "B", claim_batch=1, lease_seconds=1.5)
        task_a, task_b = asyncio.create_task(a.run()), asyncio.create_task(b.run())
        await _until(lambda: len(set(a.gateway.running_tenants()) | set(b.gateway.running_tenants())) == 6)
        for _ in range(20):
            assert not set(a.gateway.running_tenants()) & set(b.gateway.running_tenants())
            await asyncio.sleep(0.05)
        assert a.gateway.running_tenants() and b.gateway.running_tenants()
        # Kill A as a crash would: its clients vanish, its leases are left to lapse.
        a.shutdown = a.gateway.close  # type: ignore[method-assign]
        task_a.cancel()
        lost = set(a.tenants)
        killed_at = asyncio.get_running_loop().time()
        await _until(lambda: lost <= set(b.gateway.running_tenants()), timeout=10)
        assert asyncio.get_running_loop().time() - killed_at < 1.5 + 1.0
        await _stop(b, task_b)
