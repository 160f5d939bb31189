"""The dashboard shows the reasons services give in the chosen language, English when untranslated."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlmodel import Session

from services import clients, whatsapp
from services.call_center import (
    add_notes,
    assign_extension,
    log_call,
    update_pbx_settings,
)
from services.errors import Conflict, DomainError, Invalid
from services.models import (
    CallCreate,
    CallDirection,
    ClientCreate,
    ExtensionAssign,
    PbxSettingsIn,
    Role,
    WhatsappSend,
)
from tests import factories as f
from watheeq_ui.error_messages import ARABIC, error_text

PASSWORD = "sip-secret-1"


def test_a_duplicate_extension_reads_in_arabic_with_its_number(session: Session) -> None:
    tenant = f.make_tenant(session)
    admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
    first, second = (f.make_user(session, tenant, Role.AGENT) for _ in range(2))
    assign = ExtensionAssign(user_id=first.id, extension="1450", password=PASSWORD)
    assign_extension(session=session, tenant_id=tenant.id, actor=admin, data=assign)
    with pytest.raises(Conflict) as err:
        again = ExtensionAssign(user_id=second.id, extension="1450", password=PASSWORD)
        assign_extension(session=session, tenant_id=tenant.id, actor=admin, data=again)
    assert error_text("ar", err.value) == "التحويلة 1450 مسندة لمستخدم آخر بالفعل"
    assert error_text("en", err.value) == err.value.message == "extension 1450 is already assigned"


def test_an_untranslated_message_is_shown_in_english() -> None:
    assert error_text("ar", "the moon is made of cheese") == "the moon is made of cheese"
    assert error_text("ar", Invalid("x", "something new")) == "something new"


def test_english_messages_pass_through_unchanged() -> None:
    assert error_text("en", "a client name is required") == "a client name is required"


def test_values_in_a_message_are_carried_into_the_translation() -> None:
    assert error_text("ar", "'12ab' is not a valid phone number for region SA") == "'12ab' ليس رقم هاتف صالحًا في المنطقة SA"
    assert error_text("ar", "a message is at most 4096 characters") == "الرسالة 4096 حرف على الأكثر"


def test_every_translation_is_arabic_and_keeps_the_values_of_its_template() -> None:
    for english, arabic in ARABIC.items():
        assert re.search(r"[\u0600-\u06ff]", arabic), english
        assert set(re.findall(r"\{(\w+)\}", arabic)) <= set(re.findall(r"\{(\w+)\}", english)), english


def _refusals(session: Session) -> list[Callable[[], object]]:
    tenant = f.make_tenant(session)
    admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
    agent_user = f.make_user(session, tenant, Role.AGENT)
    agent = f.principal_of(agent_user)
    client = f.make_client(session, tenant)
    other_client = f.make_client(session, tenant, phone="0559876543")
    other_case = f.make_case(session, tenant, other_client)
    call = log_call(
        session=session,
        tenant_id=tenant.id,
        actor=agent,
        data=CallCreate(direction=CallDirection.INBOUND, remote_number=client.phone),
    )
    tid = tenant.id

    def extension(**kw: object) -> Callable[[], object]:
        fields = {"user_id": agent_user.id, "extension": "1001", "password": PASSWORD, **kw}
        return lambda: assign_extension(session=session, tenant_id=tid, actor=admin, data=ExtensionAssign(**fields))

    def pbx(**kw: object) -> Callable[[], object]:
        data = PbxSettingsIn(**{"host": "pbx.example.test", **kw})
        return lambda: update_pbx_settings(session=session, tenant_id=tid, actor=admin, data=data)

    def new_client(**kw: object) -> Callable[[], object]:
        return lambda: clients.create_client(session=session, tenant_id=tid, data=ClientCreate(**{"name": "Ali", **kw}))

    def note(**kw: object) -> Callable[[], object]:
        return lambda: add_notes(session=session, tenant_id=tid, actor=agent, call_id=call.id, **kw)

    def send(**kw: object) -> Callable[[], object]:
        fields = {"to": "0501234567", "body": "hello", **kw}
        return lambda: whatsapp.send_message(session=session, tenant_id=tid, actor=agent, data=WhatsappSend(**fields))

    return [
        extension(extension="1"),
        extension(display_name="x" * 101),
        extension(password="short"),
        extension(password=None),
        pbx(host=""),
        pbx(host="https://pbx.example.test/ws"),
        pbx(host="bad host!"),
        pbx(wss_port=70000),
        pbx(wss_path="ws"),
        pbx(ice_servers=[{"urls": "http://stun.example.test"}]),
        pbx(ice_servers=[{"urls": "stun:a", "credential": "x"}]),
        new_client(name=" "),
        new_client(phone="abc"),
        new_client(phone="12"),
        new_client(email="not-an-email"),
        note(note="   "),
        note(),
        note(case_id=other_case.id),
        send(body=" "),
        send(body="x" * 5000),
        send(to="0501234567", client_id=client.id),
        send(),  # the line is not connected
    ]


def test_the_reasons_services_give_on_the_dashboards_forms_are_translated(session: Session) -> None:
    untranslated = []
    for refuse in _refusals(session):
        with pytest.raises(DomainError) as err:
            refuse()
        if error_text("ar", err.value) == err.value.message:
            untranslated.append(err.value.message)
    assert untranslated == []
