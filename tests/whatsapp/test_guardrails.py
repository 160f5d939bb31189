"""Guardrails against bans: human pace (read, typing, random gaps), first contacts slower and
capped per day, and a temporary ban that pauses sending until it ends; on the simulator and
with neonize's own TemporaryBan event."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from services import db
from services.models import MessageStatus, Role, WhatsappGuardrailsUpdate, WhatsappMessage, WhatsappSend, WhatsappStatus
from services.whatsapp import guardrails, store
from services.whatsapp.simulator import enqueue_command
from tests import factories as f
from tests.whatsapp.conftest import simulated_sidecar
from tests.whatsapp.test_neonize_gateway import _held_sidecar, _row
from tests.whatsapp.test_sidecar import _link, _sim_root, _status, _stop, _until

from neonize.aioze.events import TemporaryBanEv  # isort: skip
from neonize.proto.Neonize_pb2 import TemporaryBan  # isort: skip

TYPING_CPS = 200.0  # "typing…" 0.05 s for a 10-character text
FIRST_GAP = 0.05  # first contacts 0.05-0.1 s apart (30-60 s in production)
BODY = "Hello 0001"  # 10 characters


def _tenant_and_admin() -> tuple[int, object]:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
        return tenant.id, admin


def _statuses(tenant_id: int) -> list[WhatsappMessage]:
    with db.session_scope() as session:
        return list(session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id).order_by(WhatsappMessage.id)).all())


def test_typing_time_is_proportional_to_the_text_and_capped() -> None:
    assert guardrails.typing_seconds("x" * 12, chars_per_second=6, max_seconds=6) == pytest.approx(2.0)
    assert guardrails.typing_seconds("x" * 600, chars_per_second=6, max_seconds=6) == 6
    assert guardrails.typing_seconds("hello", chars_per_second=0, max_seconds=6) == 0
    gaps = {round(guardrails.gap_seconds(2, 6), 3) for _ in range(50)}
    assert len(gaps) > 10 and all(2 <= g <= 6 for g in gaps)  # random, never one fixed period


async def test_first_contacts_go_at_the_configured_pace_and_the_daily_cap_stops_the_21st(
    engine: Engine, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One fixed day: the cap counts a UTC day, the test must not straddle midnight.
    noon = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
    monkeypatch.setattr(guardrails, "utcnow", lambda: noon)
    async with asyncio.timeout(60):
        tenant_id, admin = _tenant_and_admin()
        sidecar = simulated_sidecar(
            data_dir, "g1", typing_chars_per_second=TYPING_CPS, typing_max_seconds=1.0,
            first_contact_gap_seconds=FIRST_GAP, gap_min_seconds=0.0, gap_max_seconds=0.01,
        )
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        with db.session_scope() as session:
            assert guardrails.set_first_contact_cap(
                session=session, tenant_id=tenant_id, actor=admin, data=WhatsappGuardrailsUpdate(first_contact_daily_cap=20)
            ) == 20
        # A client who wrote to the firm: answering them is no first contact, and is read first.
        enqueue_command(tenant_id, "inbound", root=_sim_root(data_dir), from_phone="+966509990000", body="any news?")
        await _until(lambda: any(m.direction.value == "INBOUND" for m in _statuses(tenant_id)))
        with db.session_scope() as session:
            for i in range(21):
                store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to=f"+96650100{i:04d}", body=BODY))
            store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to="+966509990000", body=BODY))

        def settled() -> bool:
            rows = [m for m in _statuses(tenant_id) if m.direction.value == "OUTBOUND"]
            return len(rows) == 22 and all(m.status in (MessageStatus.SENT, MessageStatus.FAILED) for m in rows)

        await _until(settled, timeout=40)
        rows = [m for m in _statuses(tenant_id) if m.direction.value == "OUTBOUND"]
        assert [m.status for m in rows[:20]] == [MessageStatus.SENT] * 20
        capped = rows[20]
        assert capped.status == MessageStatus.FAILED and capped.error_code == "first_contact_cap"
        assert rows[21].status == MessageStatus.SENT  # the reply to a client who wrote is not capped
        with db.session_scope() as session:
            page = store.get_messages(session=session, tenant_id=tenant_id, actor=admin, limit=100)
            shown = next(m for m in page.data if m.id == capped.id)
            assert shown.error and "cap on first messages" in shown.error
            status = store.get_session_status(session=session, tenant_id=tenant_id, actor=admin)
            assert (status.first_contact_daily_cap, status.first_contacts_today) == (20, 20)

        sim = sidecar.gateway  # type: ignore[attr-defined]
        first = [m for m in sim.sent if m.tenant_id == tenant_id][:20]
        assert len({m.chat_jid for m in first}) == 20
        gaps = [b.at - a.at for a, b in zip(first, first[1:])]
        # Each next first contact waits the random first-contact gap, then types for 0.05 s.
        assert min(gaps) >= FIRST_GAP + len(BODY) / TYPING_CPS - 0.005, gaps
        typing = {chat: at for (t, chat, on, at) in sim.presence if t == tenant_id and on}
        for message in first:
            assert message.at - typing[message.chat_jid] >= len(BODY) / TYPING_CPS - 0.005
        reply_chat = "966509990000@s.whatsapp.net"
        reads = [r for r in sim.reads if r[1] == reply_chat]
        inbound_id = next(m.wa_message_id for m in _statuses(tenant_id) if m.direction.value == "INBOUND")
        assert reads and reads[0][2] == [inbound_id]
        assert not any(r[1] != reply_chat for r in sim.reads)  # first contacts have nothing to read
        await _stop(sidecar, task)


async def test_a_temporary_ban_pauses_sending_until_it_ends_and_the_status_says_why(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(60):
        tenant_id, admin = _tenant_and_admin()
        # 1.5 s between sends: the ban arrives while the 2nd and 3rd messages wait their turn.
        sidecar = simulated_sidecar(data_dir, "g2", gap_min_seconds=1.5, gap_max_seconds=1.5, first_contact_gap_seconds=1.5)
        task = asyncio.create_task(sidecar.run())
        await _link(data_dir, sidecar, tenant_id, admin)
        with db.session_scope() as session:
            for i in range(3):
                store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to="+966501112299", body=f"m{i}"))
        await _until(lambda: _statuses(tenant_id)[0].status == MessageStatus.SENT)
        enqueue_command(tenant_id, "temporary_ban", root=_sim_root(data_dir), code="BLOCKED_BY_USERS", seconds=3)
        status = await _until(lambda: (s := _status(tenant_id)).banned_until and s)
        assert status.ban_code == "BLOCKED_BY_USERS"
        assert status.error_message and status.error_message.startswith("Sending paused") and "too many people blocked" in status.error_message
        banned_until = status.banned_until
        assert guardrails.ban_sentence(status.ban_code, banned_until, "ar").startswith("الإرسال متوقف")
        await asyncio.sleep(1.0)
        assert datetime.now(timezone.utc) < banned_until
        assert [m.status for m in _statuses(tenant_id)[1:]] == [MessageStatus.PENDING] * 2
        assert _status(tenant_id).status != WhatsappStatus.CONNECTED
        # Written during the ban: queued behind the others (the line is down, but only paused).
        with db.session_scope() as session:
            store.send_message(session=session, tenant_id=tenant_id, actor=admin, data=WhatsappSend(to="+966501112299", body="m3"))
        assert [m.status for m in _statuses(tenant_id)[1:]] == [MessageStatus.PENDING] * 3

        await _until(lambda: all(m.status == MessageStatus.SENT for m in _statuses(tenant_id)), timeout=20)
        for message in _statuses(tenant_id)[1:]:
            assert message.sent_at is not None and message.sent_at >= banned_until
        assert _status(tenant_id).banned_until is None  # over: the page no longer says paused
        await _stop(sidecar, task)


async def test_neonize_temporary_ban_event_records_its_code_and_expiry(engine: Engine, data_dir: Path) -> None:
    async with asyncio.timeout(20):
        sidecar, gateway, tenant_id, _admin = await _held_sidecar(data_dir)
        event = TemporaryBanEv(Code=TemporaryBan.TempBanReason.SEND_TO_TOO_MANY_PEOPLE, Expire=2 * 3600)
        before = datetime.now(timezone.utc)
        await gateway.dispatch(tenant_id, None, event)
        await _until(lambda: _row(tenant_id).ban_code is not None)
        row = _row(tenant_id)
        assert row.ban_code == "SEND_TO_TOO_MANY_PEOPLE"
        assert before + timedelta(hours=2) - timedelta(seconds=5) <= row.banned_until <= datetime.now(timezone.utc) + timedelta(hours=2)
        assert row.error_code == "temp_banned"
        # The line waits for the ban's end before dialling again.
        assert sidecar.tenants[tenant_id].lease.next_retry_at >= row.banned_until - timedelta(seconds=1)
        with db.session_scope() as session:
            assert guardrails.banned_until(session=session, tenant_id=tenant_id) == row.banned_until
        await sidecar.shutdown()
