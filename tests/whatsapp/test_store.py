"""The session store and message functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from services import paging
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import (
    MessageDirection,
    MessageStatus,
    Role,
    WhatsappDesiredState,
    WhatsappInbound,
    WhatsappMessage,
    WhatsappSend,
    WhatsappSession,
    WhatsappStatus,
)
from services.timestamps import local_day_range
from services.whatsapp import store
from tests import factories as f


def _connected(session: Session, tenant) -> None:
    session.add(
        WhatsappSession(
            tenant_id=tenant.id,
            desired_state=WhatsappDesiredState.CONNECTED,
            status=WhatsappStatus.CONNECTED,
            device_jid="966500000001:3@s.whatsapp.net",
            phone_number="+966500000001",
        )
    )
    session.flush()


def test_status_of_a_tenant_without_a_session_is_disconnected(session: Session) -> None:
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    status = store.get_session_status(session=session, tenant_id=tenant.id, actor=agent)
    assert status.status == WhatsappStatus.DISCONNECTED
    assert status.desired_state == WhatsappDesiredState.DISCONNECTED
    assert status.gateway == "simulator"


def test_init_session_by_admin_wants_connected_and_is_idempotent(session: Session) -> None:
    tenant = f.make_tenant(session)
    admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
    first = store.init_session(session=session, tenant_id=tenant.id, actor=admin)
    second = store.init_session(session=session, tenant_id=tenant.id, actor=admin)
    assert first.desired_state == second.desired_state == WhatsappDesiredState.CONNECTED
    assert second.status == WhatsappStatus.CONNECTING
    assert len(session.exec(select(WhatsappSession)).all()) == 1


@pytest.mark.parametrize("role", [Role.AGENT, Role.MANAGER])
def test_only_owner_or_admin_may_link_or_unlink(session: Session, role: Role) -> None:
    tenant = f.make_tenant(session)
    actor = f.principal_of(f.make_user(session, tenant, role))
    with pytest.raises(Forbidden):
        store.init_session(session=session, tenant_id=tenant.id, actor=actor)
    with pytest.raises(Forbidden):
        store.disconnect(session=session, tenant_id=tenant.id, actor=actor)
    assert session.exec(select(WhatsappSession)).first() is None


def test_disconnect_of_a_never_paired_unheld_session_closes_it_at_once(session: Session) -> None:
    tenant = f.make_tenant(session)
    owner = f.principal_of(f.make_user(session, tenant, Role.OWNER))
    store.init_session(session=session, tenant_id=tenant.id, actor=owner)
    status = store.disconnect(session=session, tenant_id=tenant.id, actor=owner)
    assert status.status == WhatsappStatus.DISCONNECTED
    assert status.desired_state == WhatsappDesiredState.DISCONNECTED


def test_disconnect_of_a_paired_session_leaves_the_teardown_to_the_sidecar(session: Session) -> None:
    tenant = f.make_tenant(session)
    owner = f.principal_of(f.make_user(session, tenant, Role.OWNER))
    _connected(session, tenant)
    status = store.disconnect(session=session, tenant_id=tenant.id, actor=owner)
    assert status.desired_state == WhatsappDesiredState.DISCONNECTED
    assert status.status == WhatsappStatus.CONNECTED


def test_send_to_a_number_queues_pending_in_e164_and_matches_the_client(session: Session) -> None:
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    client = f.make_client(session, tenant, name="Noura", phone="0501234567")
    _connected(session, tenant)
    message = store.send_message(session=session, tenant_id=tenant.id, actor=agent, data=WhatsappSend(to="+966 50 123 4567", body="Hello"))
    assert message.status == MessageStatus.PENDING
    assert message.remote_e164 == "+966501234567"
    assert message.chat_jid == "966501234567@s.whatsapp.net"
    assert message.client_id == client.id and message.client_name == "Noura"


def test_send_to_a_client_uses_its_number(session: Session) -> None:
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    client = f.make_client(session, tenant, phone="0551112222")
    _connected(session, tenant)
    message = store.send_message(session=session, tenant_id=tenant.id, actor=agent, data=WhatsappSend(client_id=client.id, body="Hi"))
    assert message.remote_e164 == "+966551112222"
    assert message.client_id == client.id


def test_send_rejects_bad_input_and_changes_nothing(session: Session) -> None:
    tenant, other = f.make_tenant(session), f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    foreign = f.make_client(session, other)
    no_phone = f.make_client(session, tenant, phone="")
    _connected(session, tenant)
    cases = [
        ({"to": "0501234567", "body": "   "}, Invalid, "body"),
        ({"to": "0501234567", "body": "x" * 4097}, Invalid, "body"),
        ({"body": "hi"}, Invalid, "to"),
        ({"to": "0501234567", "client_id": no_phone.id, "body": "hi"}, Invalid, "to"),
        ({"to": "not a number", "body": "hi"}, Invalid, "to"),
        ({"client_id": no_phone.id, "body": "hi"}, Invalid, "client_id"),
        ({"client_id": foreign.id, "body": "hi"}, NotFound, None),
    ]
    for fields, error, field in cases:
        # Built inside: a body past WhatsappSend's limit is refused as the DTO is built.
        with pytest.raises(error) as caught:
            store.send_message(session=session, tenant_id=tenant.id, actor=agent, data=WhatsappSend(**fields))
        if field:
            assert caught.value.field == field
    assert session.exec(select(WhatsappMessage)).all() == []


def test_send_is_a_conflict_when_the_line_is_not_connected(session: Session) -> None:
    tenant = f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, tenant, Role.AGENT))
    with pytest.raises(Conflict) as caught:
        store.send_message(session=session, tenant_id=tenant.id, actor=agent, data=WhatsappSend(to="0501234567", body="hi"))
    assert caught.value.field == "status"
    assert caught.value.message == "the WhatsApp line is not connected"


def test_store_inbound_dedupes_by_wa_id_and_matches_the_oldest_client(session: Session) -> None:
    tenant = f.make_tenant(session)
    oldest = f.make_client(session, tenant, name="First", phone="0501234567")
    f.make_client(session, tenant, name="Second", phone="0501234567")
    message = WhatsappInbound(wa_message_id="ABC1", chat_jid="966501234567@s.whatsapp.net", remote_e164="+966501234567", body="hi")
    assert store.store_inbound(session=session, tenant_id=tenant.id, messages=[message, message]) == 1
    assert store.store_inbound(session=session, tenant_id=tenant.id, messages=[message]) == 0
    rows = session.exec(select(WhatsappMessage)).all()
    assert len(rows) == 1
    assert rows[0].client_id == oldest.id and rows[0].status == MessageStatus.RECEIVED
    assert rows[0].direction == MessageDirection.INBOUND


def test_the_same_wa_id_in_two_tenants_is_two_messages_matched_in_their_own_tenant(session: Session) -> None:
    a, b = f.make_tenant(session), f.make_tenant(session)
    client_b = f.make_client(session, b, phone="0501234567")
    f.make_client(session, a, phone="0509999999")
    message = WhatsappInbound(wa_message_id="SAME", chat_jid="966501234567@s.whatsapp.net", remote_e164="+966501234567", body="hi")
    store.store_inbound(session=session, tenant_id=a.id, messages=[message])
    store.store_inbound(session=session, tenant_id=b.id, messages=[message])
    by_tenant = {m.tenant_id: m for m in session.exec(select(WhatsappMessage)).all()}
    assert by_tenant[a.id].client_id is None
    assert by_tenant[b.id].client_id == client_b.id


def test_store_inbound_rejects_a_message_without_id(session: Session) -> None:
    tenant = f.make_tenant(session)
    with pytest.raises(Invalid):
        store.store_inbound(session=session, tenant_id=tenant.id, messages=[WhatsappInbound(wa_message_id="", chat_jid="x@s.whatsapp.net", remote_e164=None)])


def test_receipts_only_move_forward_and_only_in_the_tenant(session: Session) -> None:
    a, b = f.make_tenant(session), f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, a, Role.AGENT))
    _connected(session, a)
    sent = store.send_message(session=session, tenant_id=a.id, actor=agent, data=WhatsappSend(to="0501234567", body="hi"))
    store.mark_sent(session=session, tenant_id=a.id, message_id=sent.id, wa_message_id="WA1")
    assert store.apply_receipt(session=session, tenant_id=b.id, wa_message_ids=["WA1"], status=MessageStatus.READ) == 0
    assert store.apply_receipt(session=session, tenant_id=a.id, wa_message_ids=["WA1"], status=MessageStatus.READ) == 1
    assert store.apply_receipt(session=session, tenant_id=a.id, wa_message_ids=["WA1"], status=MessageStatus.DELIVERED) == 0
    row = session.exec(select(WhatsappMessage)).one()
    assert row.status == MessageStatus.READ and row.read_at is not None and row.delivered_at is not None
    with pytest.raises(Invalid):
        store.apply_receipt(session=session, tenant_id=a.id, wa_message_ids=["WA1"], status=MessageStatus.SENT)


def test_mark_sent_of_another_tenants_message_is_not_found(session: Session) -> None:
    a, b = f.make_tenant(session), f.make_tenant(session)
    agent = f.principal_of(f.make_user(session, a, Role.AGENT))
    _connected(session, a)
    sent = store.send_message(session=session, tenant_id=a.id, actor=agent, data=WhatsappSend(to="0501234567", body="hi"))
    with pytest.raises(NotFound):
        store.mark_sent(session=session, tenant_id=b.id, message_id=sent.id, wa_message_id="WA1")


def test_get_messages_pages_newest_first_filters_and_joins_client_names(session: Session) -> None:
    tenant, other = f.make_tenant(session), f.make_tenant(session)
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    client = f.make_client(session, tenant, name="Huda", phone="0501234567")
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    messages = [
        WhatsappInbound(
            wa_message_id=f"M{i}",
            chat_jid="966501234567@s.whatsapp.net" if i % 2 else "966551112222@s.whatsapp.net",
            remote_e164="+966501234567" if i % 2 else "+966551112222",
            body=f"m{i}",
            timestamp=base + timedelta(minutes=i),
        )
        for i in range(7)
    ]
    store.store_inbound(session=session, tenant_id=tenant.id, messages=messages)
    store.store_inbound(session=session, tenant_id=other.id, messages=messages[:2])
    seen, cursor = [], None
    while True:
        page = store.get_messages(session=session, tenant_id=tenant.id, actor=manager, cursor=cursor, limit=3)
        assert page.count == 7
        seen += [m.body for m in page.data]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"m{i}" for i in reversed(range(7))]
    mine = store.get_messages(session=session, tenant_id=tenant.id, actor=manager, client_id=client.id)
    assert [m.body for m in mine.data] == ["m5", "m3", "m1"] and {m.client_name for m in mine.data} == {"Huda"}
    ranged = store.get_messages(
        session=session, tenant_id=tenant.id, actor=manager, date_from=base + timedelta(minutes=2), date_to=base + timedelta(minutes=5),
        direction=MessageDirection.INBOUND,
    )
    assert [m.body for m in ranged.data] == ["m4", "m3", "m2"]
    chat = store.get_messages(session=session, tenant_id=tenant.id, actor=manager, chat_jid="966551112222@s.whatsapp.net")
    assert chat.count == 4


def test_a_day_range_takes_the_whole_last_day_and_not_the_next_midnight(session: Session) -> None:
    tenant = f.make_tenant(session, timezone="Asia/Riyadh")
    agent = f.principal_of(f.make_user(session, tenant))
    riyadh = ZoneInfo("Asia/Riyadh")
    f.make_message(session, tenant, body="new year", created_at=datetime(2026, 1, 1, 0, 0, tzinfo=riyadh))
    f.make_message(session, tenant, body="last second", created_at=datetime(2026, 1, 31, 23, 59, 59, tzinfo=riyadh))
    f.make_message(session, tenant, body="february", created_at=datetime(2026, 2, 1, 0, 0, tzinfo=riyadh))
    f.make_message(session, tenant, body="old year", created_at=datetime(2025, 12, 31, 23, 59, tzinfo=riyadh))
    start, end = local_day_range("2026-01-01", "2026-01-31", tenant.timezone)
    page = store.get_messages(session=session, tenant_id=tenant.id, actor=agent, date_from=start, date_to=end)
    assert [m.body for m in page.data] == ["last second", "new year"] and page.count == 2


def test_get_messages_rejects_bad_filters(session: Session) -> None:
    tenant, other = f.make_tenant(session), f.make_tenant(session)
    manager = f.principal_of(f.make_user(session, tenant, Role.MANAGER))
    foreign = f.make_client(session, other)
    with pytest.raises(Invalid):
        store.get_messages(session=session, tenant_id=tenant.id, actor=manager, cursor="garbage!!")
    # A cursor of another list (the call history) does not page the messages.
    with pytest.raises(Invalid):
        store.get_messages(session=session, tenant_id=tenant.id, actor=manager, cursor=paging.encode_cursor("calls", datetime.now(timezone.utc), 1))
    with pytest.raises(Invalid):
        store.get_messages(session=session, tenant_id=tenant.id, actor=manager, limit=0)
    with pytest.raises(NotFound):
        store.get_messages(session=session, tenant_id=tenant.id, actor=manager, client_id=foreign.id)
    outsider = f.principal_of(f.make_user(session, other, Role.OWNER))
    with pytest.raises(Forbidden):
        store.get_messages(session=session, tenant_id=tenant.id, actor=outsider)


def test_leases_are_exclusive_until_they_lapse(session: Session) -> None:
    tenant = f.make_tenant(session)
    owner = f.principal_of(f.make_user(session, tenant, Role.OWNER))
    store.init_session(session=session, tenant_id=tenant.id, actor=owner)
    now = datetime.now(timezone.utc)
    assert [l.tenant_id for l in store.restore_active_sessions(session=session, worker_id="a", lease_seconds=10, now=now)] == [tenant.id]
    assert store.restore_active_sessions(session=session, worker_id="b", lease_seconds=10, now=now) == []
    assert not store.record_qr(session=session, tenant_id=tenant.id, worker_id="b", payload="qr")
    assert store.record_qr(session=session, tenant_id=tenant.id, worker_id="a", payload="qr")
    later = now + timedelta(seconds=11)
    assert [l.tenant_id for l in store.restore_active_sessions(session=session, worker_id="b", lease_seconds=10, now=later)] == [tenant.id]
    lost = store.sync_worker(session=session, worker_id="a", held=[tenant.id], lease_seconds=10, renew=True, claim_limit=5, now=later)
    assert lost.leases == [] and lost.claimed == set()
    assert store.get_session_status(session=session, tenant_id=tenant.id, actor=owner).qr_payload == "qr"


def test_a_worker_holding_sessions_still_claims_the_next_free_one(session: Session) -> None:
    tenant_ids = []
    for _ in range(3):
        tenant = f.make_tenant(session)
        store.init_session(session=session, tenant_id=tenant.id, actor=f.principal_of(f.make_user(session, tenant, Role.ADMIN)))
        tenant_ids.append(tenant.id)
    held: list[int] = []
    for expected in tenant_ids:
        claimed = store.restore_active_sessions(session=session, worker_id="a", lease_seconds=10, limit=1, held=held)
        assert [lease.tenant_id for lease in claimed] == [expected]
        held.append(expected)
    assert store.restore_active_sessions(session=session, worker_id="a", lease_seconds=10, limit=1, held=held) == []


def test_a_restarted_worker_takes_back_its_own_sessions_at_once(session: Session) -> None:
    tenant = f.make_tenant(session)
    store.init_session(session=session, tenant_id=tenant.id, actor=f.principal_of(f.make_user(session, tenant, Role.OWNER)))
    now = datetime.now(timezone.utc)
    store.restore_active_sessions(session=session, worker_id="a", lease_seconds=10, now=now)
    sync = store.sync_worker(session=session, worker_id="a", held=[], lease_seconds=10, renew=True, claim_limit=0, now=now)
    assert [lease.tenant_id for lease in sync.leases] == [tenant.id]
    assert store.sync_worker(session=session, worker_id="b", held=[], lease_seconds=10, renew=True, claim_limit=5, now=now).leases == []


def test_worker_sync_renews_leases_and_reports_pending_messages(session: Session) -> None:
    tenant = f.make_tenant(session)
    owner = f.principal_of(f.make_user(session, tenant, Role.OWNER))
    store.init_session(session=session, tenant_id=tenant.id, actor=owner)
    now = datetime.now(timezone.utc)
    store.restore_active_sessions(session=session, worker_id="a", lease_seconds=10, now=now)
    assert store.record_connected(session=session, tenant_id=tenant.id, worker_id="a")
    store.send_message(session=session, tenant_id=tenant.id, actor=owner, data=WhatsappSend(to="0501234567", body="hi"))
    later = now + timedelta(seconds=8)
    sync = store.sync_worker(
        session=session, worker_id="a", held=[tenant.id], lease_seconds=10, renew=True, claim_limit=5, seen=[tenant.id], pending_for=[tenant.id], now=later
    )
    assert sync.pending == {tenant.id} and sync.claimed == set()
    (lease,) = sync.leases
    assert lease.lease_expires_at == later + timedelta(seconds=10)
    # Renewed: another worker cannot take it after the first lease would have lapsed.
    assert store.restore_active_sessions(session=session, worker_id="b", lease_seconds=10, now=now + timedelta(seconds=12)) == []


def test_messages_fingerprint_changes_only_when_a_message_arrives_or_moves(session: Session) -> None:
    tenant = f.make_tenant(session)
    owner = f.principal_of(f.make_user(session, tenant, Role.OWNER))
    other = f.make_tenant(session)
    _connected(session, tenant)
    empty = store.messages_fingerprint(session=session, tenant_id=tenant.id)
    sent = store.send_message(session=session, tenant_id=tenant.id, actor=owner, data=WhatsappSend(to="0501234567", body="hi"))
    queued = store.messages_fingerprint(session=session, tenant_id=tenant.id)
    assert queued != empty
    assert store.messages_fingerprint(session=session, tenant_id=tenant.id) == queued
    # Another firm's traffic does not touch it.
    store.store_inbound(session=session, tenant_id=other.id, messages=[WhatsappInbound(wa_message_id="X1", chat_jid="1@s.whatsapp.net", remote_e164=None)])
    assert store.messages_fingerprint(session=session, tenant_id=tenant.id) == queued
    store.mark_sent(session=session, tenant_id=tenant.id, message_id=sent.id, wa_message_id="WA1")
    assert store.messages_fingerprint(session=session, tenant_id=tenant.id) != queued


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_only_owner_and_admin_are_shown_the_linking_qr(session: Session, role: Role) -> None:
    tenant = f.make_tenant(session)
    admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
    other = f.principal_of(f.make_user(session, tenant, role))
    store.init_session(session=session, tenant_id=tenant.id, actor=admin)
    now = datetime.now(timezone.utc)
    store.restore_active_sessions(session=session, worker_id="a", lease_seconds=10, now=now)
    assert store.record_qr(session=session, tenant_id=tenant.id, worker_id="a", payload="2@scan-me")

    seen_by_admin = store.get_session_status(session=session, tenant_id=tenant.id, actor=admin)
    seen_by_other = store.get_session_status(session=session, tenant_id=tenant.id, actor=other)
    assert seen_by_admin.qr_payload == "2@scan-me" and seen_by_admin.qr_issued_at is not None
    assert seen_by_other.status == WhatsappStatus.QR_PENDING
    assert seen_by_other.qr_payload is None and seen_by_other.qr_issued_at is None


def test_another_firms_user_cannot_read_the_line(session: Session) -> None:
    tenant, other_firm = f.make_tenant(session), f.make_tenant(session)
    outsider = f.principal_of(f.make_user(session, other_firm, Role.OWNER))
    with pytest.raises(Forbidden):
        store.get_session_status(session=session, tenant_id=tenant.id, actor=outsider)
