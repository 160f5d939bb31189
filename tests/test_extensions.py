"""SIP extensions and PBX settings: roles, validation, secrets, tenant isolation."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from services import security
from services.call_center import (
    assign_extension,
    delete_extension,
    get_extension_for_user,
    get_extensions,
    get_pbx_settings,
    update_pbx_settings,
)
from services.errors import Conflict, Forbidden, Invalid, NotFound
from services.models import ExtensionAssign, PbxSettings, PbxSettingsIn, Role, SipExtension
from tests import factories as f

SECRET = "s3cret-sip-pass"


@pytest.fixture
def firm(session: Session) -> f.Firm:
    return f.make_firm(session)


@pytest.fixture
def other(session: Session) -> f.Firm:
    return f.make_firm(session)


def _pbx(session: Session, firm: f.Firm, **kw: object) -> None:
    data = {"host": "pbx.example.test", "wss_port": 8089, "wss_path": "/ws", **kw}
    update_pbx_settings(session=session, tenant_id=firm.tenant.id, actor=firm.admin, data=PbxSettingsIn(**data))


def _assign(session: Session, firm: f.Firm, role: Role = Role.AGENT, number: str = "1001", password: str | None = SECRET):
    return assign_extension(
        session=session,
        tenant_id=firm.tenant.id,
        actor=firm.admin,
        data=ExtensionAssign(user_id=firm.users[role].id, extension=number, password=password),
    )


def _extension_rows(session: Session, tenant_id: int) -> list[tuple[int, str]]:
    return session.execute(
        sa.select(SipExtension.user_id, SipExtension.extension).where(SipExtension.tenant_id == tenant_id).order_by(SipExtension.id)
    ).all()


# --------------------------------------------------------------------------- PBX settings


def test_pbx_settings_are_none_until_set_then_give_the_wss_url(session, firm):
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id) is None
    _pbx(session, firm, host="PBX.Example.Test", wss_port=8443, wss_path="/wss", ice_servers=[{"urls": "stun:stun.example.test:3478"}])
    settings = get_pbx_settings(session=session, tenant_id=firm.tenant.id)
    assert settings.wss_url == "wss://pbx.example.test:8443/wss"
    assert settings.ice_servers == [{"urls": "stun:stun.example.test:3478"}]


def test_pbx_settings_accept_ip_addresses_and_bracket_ipv6_in_the_url(session, firm):
    _pbx(session, firm, host="192.168.1.20")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).wss_url == "wss://192.168.1.20:8089/ws"
    _pbx(session, firm, host="fd00::20")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).wss_url == "wss://[fd00::20]:8089/ws"


def test_a_pbx_on_this_machine_may_use_plain_ws_and_each_firm_gets_its_own_sip_domain(session, firm, other):
    for who, host in ((firm, "127.0.0.1"), (other, "localhost")):
        _pbx(session, who, host=host, transport="ws", wss_port=8088)
    mine = get_pbx_settings(session=session, tenant_id=firm.tenant.id)
    theirs = get_pbx_settings(session=session, tenant_id=other.tenant.id)
    assert (mine.transport, mine.wss_url) == ("ws", "ws://127.0.0.1:8088/ws")
    assert theirs.wss_url == "ws://localhost:8088/ws"
    # Both firms share the one loopback PBX: their numbers must live in different domains.
    assert mine.sip_domain == f"{firm.tenant.slug}.pbx.localhost"
    assert theirs.sip_domain == f"{other.tenant.slug}.pbx.localhost"
    _pbx(session, firm, host="::1", transport="ws", sip_domain="chosen.example.test")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).sip_domain == "chosen.example.test"
    # wss stays the default (and the only choice) for a PBX on the network.
    _pbx(session, firm, host="pbx.example.test")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).wss_url == "wss://pbx.example.test:8089/ws"


def test_pbx_settings_are_per_firm(session, firm, other):
    _pbx(session, firm, host="a.example.test")
    assert get_pbx_settings(session=session, tenant_id=other.tenant.id) is None
    _pbx(session, other, host="b.example.test")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).host == "a.example.test"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"host": "wss://pbx.example.test"}, "host"),
        ({"host": ""}, "host"),
        ({"host": "pbx.example.test/ws"}, "host"),
        ({"host": "bad_host!"}, "host"),
        ({"wss_port": 0}, "wss_port"),
        ({"wss_port": 65536}, "wss_port"),
        ({"wss_path": "ws"}, "wss_path"),
        ({"transport": "udp"}, "transport"),
        ({"transport": "ws"}, "transport"),  # plain ws:// to a PBX on the network
        ({"transport": "ws", "host": "192.168.1.20"}, "transport"),
        ({"sip_domain": "http://x"}, "sip_domain"),
        ({"did": "0110000000"}, "did"),  # a national number: the trunk matches E.164
        ({"did": "+966 11 abc"}, "did"),
        ({"did": "+9661100000000000"}, "did"),
        ({"ice_servers": [{"urls": "http://stun.example.test"}]}, "ice_servers[0].urls"),
        ({"ice_servers": [{"urls": "stun:a"}, {"urls": []}]}, "ice_servers[1].urls"),
        ({"ice_servers": [{"urls": "turn:t.example.test", "credential": "pw"}]}, "ice_servers[0].credential"),
        ({"ice_servers": [{"urls": "stun:a", "password": "x"}]}, "ice_servers[0].password"),
    ],
)
def test_bad_pbx_settings_are_refused_and_change_nothing(session, firm, change, field):
    _pbx(session, firm)
    with pytest.raises(Invalid) as err:
        _pbx(session, firm, **change)
    assert err.value.field == field
    settings = get_pbx_settings(session=session, tenant_id=firm.tenant.id)
    assert (settings.host, settings.wss_port, settings.wss_path, settings.ice_servers) == ("pbx.example.test", 8089, "/ws", [])


def test_a_firms_did_is_kept_in_e164_as_people_write_it(session, firm):
    _pbx(session, firm, did="00966 (11) 000-0000")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).did == "+966110000000"
    _pbx(session, firm, did="")
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id).did == ""


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_only_owner_and_admin_change_pbx_settings(session, firm, role):
    actor = firm.manager if role == Role.MANAGER else firm.agent
    with pytest.raises(Forbidden):
        update_pbx_settings(session=session, tenant_id=firm.tenant.id, actor=actor, data=PbxSettingsIn(host="pbx.example.test"))
    update_pbx_settings(session=session, tenant_id=firm.tenant.id, actor=firm.owner, data=PbxSettingsIn(host="pbx.example.test"))
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id) is not None


def test_principal_of_another_firm_cannot_change_pbx_settings(session, firm, other):
    with pytest.raises(Forbidden):
        update_pbx_settings(session=session, tenant_id=firm.tenant.id, actor=other.admin, data=PbxSettingsIn(host="x.example.test"))
    assert get_pbx_settings(session=session, tenant_id=firm.tenant.id) is None


def test_turn_credential_is_stored_encrypted_kept_when_omitted_and_cleared_with_empty_text(session, firm):
    ice = [{"urls": ["turn:turn.example.test:3478?transport=udp"], "username": "watheeq"}, {"urls": "stun:stun.example.test"}]
    update_pbx_settings(
        session=session, tenant_id=firm.tenant.id, actor=firm.admin, data=PbxSettingsIn(host="pbx.example.test", ice_servers=ice), turn_credential="turn-pass-1"
    )
    stored = session.exec(select(PbxSettings.turn_credential_encrypted)).one()
    assert stored and "turn-pass-1" not in stored
    assert "turn-pass-1" not in get_pbx_settings(session=session, tenant_id=firm.tenant.id).model_dump_json()

    update_pbx_settings(session=session, tenant_id=firm.tenant.id, actor=firm.admin, data=PbxSettingsIn(host="pbx.example.test", ice_servers=ice))
    _assign(session, firm)
    config = get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id)
    assert config.ice_servers[0]["credential"] == "turn-pass-1"
    assert "credential" not in config.ice_servers[1]

    update_pbx_settings(
        session=session, tenant_id=firm.tenant.id, actor=firm.admin, data=PbxSettingsIn(host="pbx.example.test", ice_servers=ice), turn_credential=""
    )
    config = get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id)
    assert all("credential" not in s for s in config.ice_servers)


# --------------------------------------------------------------------------- extensions


def test_assigning_an_extension_stores_the_password_encrypted_and_never_returns_it(session, firm):
    ext = _assign(session, firm)
    assert ext.extension == "1001" and ext.user_id == firm.agent.user_id
    assert ext.user_email == firm.users[Role.AGENT].email
    assert ext.display_name == firm.users[Role.AGENT].full_name
    assert SECRET not in ext.model_dump_json()
    stored = session.exec(select(SipExtension.password_encrypted)).one()
    assert SECRET not in stored
    assert security.decrypt_secret(stored, purpose="sip_extension.password") == SECRET


def test_changing_a_users_extension_keeps_one_row_and_the_password_when_omitted(session, firm):
    first = _assign(session, firm, number="1001")
    second = _assign(session, firm, number="1050", password=None)
    assert second.id == first.id and second.extension == "1050"
    assert _extension_rows(session, firm.tenant.id) == [(firm.agent.user_id, "1050")]
    _pbx(session, firm)
    assert get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id).password == SECRET


def test_a_new_password_replaces_the_old_one(session, firm):
    _assign(session, firm)
    _assign(session, firm, password="another-pass-9")
    _pbx(session, firm)
    assert get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id).password == "another-pass-9"


def test_an_extension_number_is_unique_in_a_firm(session, firm):
    _assign(session, firm, Role.AGENT, "1001")
    with pytest.raises(Conflict) as err:
        _assign(session, firm, Role.MANAGER, "1001")
    assert err.value.field == "extension"
    assert _extension_rows(session, firm.tenant.id) == [(firm.agent.user_id, "1001")]


def test_the_same_number_may_exist_in_another_firm(session, firm, other):
    _assign(session, firm, number="1001")
    assert _assign(session, other, number="1001").extension == "1001"


@pytest.mark.parametrize(("number", "password", "field"), [
    ("1", SECRET, "extension"),
    ("12345678901", SECRET, "extension"),
    ("10a1", SECRET, "extension"),
    ("", SECRET, "extension"),
    ("1001", None, "password"),
    ("1001", "short", "password"),
    ("1001", "x" * 129, "password"),
])
def test_bad_extension_input_is_refused_and_creates_nothing(session, firm, number, password, field):
    with pytest.raises(Invalid) as err:
        _assign(session, firm, number=number, password=password)
    assert err.value.field == field
    assert _extension_rows(session, firm.tenant.id) == []


def test_assigning_to_a_user_of_another_firm_is_not_found(session, firm, other):
    with pytest.raises(NotFound):
        assign_extension(
            session=session, tenant_id=firm.tenant.id, actor=firm.admin,
            data=ExtensionAssign(user_id=other.agent.user_id, extension="1001", password=SECRET),
        )
    assert _extension_rows(session, firm.tenant.id) == [] and _extension_rows(session, other.tenant.id) == []


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_only_owner_and_admin_assign_and_delete_extensions(session, firm, role):
    actor = firm.manager if role == Role.MANAGER else firm.agent
    with pytest.raises(Forbidden):
        assign_extension(session=session, tenant_id=firm.tenant.id, actor=actor, data=ExtensionAssign(user_id=actor.user_id, extension="1001", password=SECRET))
    ext = _assign(session, firm)
    with pytest.raises(Forbidden):
        delete_extension(session=session, tenant_id=firm.tenant.id, actor=actor, extension_id=ext.id)
    assert len(_extension_rows(session, firm.tenant.id)) == 1


def test_supervisors_list_their_firms_extensions_with_sip_uris(session, firm, other):
    _pbx(session, firm, sip_domain="sip.example.test")
    _assign(session, firm, Role.AGENT, "1002")
    _assign(session, firm, Role.MANAGER, "1001")
    _assign(session, other, Role.AGENT, "1003")
    listed = get_extensions(session=session, tenant_id=firm.tenant.id, actor=firm.manager)
    assert [(e.extension, e.user_id, e.sip_uri) for e in listed] == [
        ("1001", firm.manager.user_id, "sip:1001@sip.example.test"),
        ("1002", firm.agent.user_id, "sip:1002@sip.example.test"),
    ]


def test_agents_may_not_list_extensions(session, firm):
    with pytest.raises(Forbidden):
        get_extensions(session=session, tenant_id=firm.tenant.id, actor=firm.agent)


def test_deleting_an_extension_removes_it(session, firm):
    ext = _assign(session, firm)
    delete_extension(session=session, tenant_id=firm.tenant.id, actor=firm.owner, extension_id=ext.id)
    assert _extension_rows(session, firm.tenant.id) == []
    with pytest.raises(NotFound):
        delete_extension(session=session, tenant_id=firm.tenant.id, actor=firm.owner, extension_id=ext.id)


def test_deleting_another_firms_extension_is_not_found_and_keeps_it(session, firm, other):
    theirs = _assign(session, other)
    with pytest.raises(NotFound):
        delete_extension(session=session, tenant_id=firm.tenant.id, actor=firm.admin, extension_id=theirs.id)
    assert len(_extension_rows(session, other.tenant.id)) == 1


# --------------------------------------------------------------------------- softphone config


def test_softphone_config_carries_the_users_own_decrypted_password(session, firm):
    _pbx(session, firm, ice_servers=[{"urls": "stun:stun.example.test"}])
    ext = _assign(session, firm)
    config = get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id)
    assert config.extension_id == ext.id
    assert config.wss_url == "wss://pbx.example.test:8089/ws"
    assert config.sip_uri == "sip:1001@pbx.example.test"  # domain defaults to the host
    assert config.authorization_user == "1001"
    assert config.password == SECRET
    assert config.ice_servers == [{"urls": "stun:stun.example.test"}]


def test_softphone_config_is_not_found_without_an_extension(session, firm):
    _pbx(session, firm)
    with pytest.raises(NotFound):
        get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id)


def test_softphone_config_conflicts_when_the_pbx_is_not_configured(session, firm):
    _assign(session, firm)
    with pytest.raises(Conflict):
        get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=firm.agent.user_id)


def test_softphone_config_of_another_firms_user_is_not_found(session, firm, other):
    _pbx(session, firm)
    _pbx(session, other)
    _assign(session, other)
    with pytest.raises(NotFound):
        get_extension_for_user(session=session, tenant_id=firm.tenant.id, user_id=other.agent.user_id)
