"""Managing a firm's accounts: who may change whom, set-password links, passwords, sessions, audit."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import accounts, audit, db, security
from services.errors import AuthenticationFailed, Conflict, Forbidden, Invalid, NotFound
from services.models import ApiToken, AuditEvent, PasswordSetLink, Principal, Role, User, utcnow
from tests import factories

NEW_PASSWORD = "a brand new passphrase"


def _actor(session: Session, tenant, role: Role) -> Principal:
    return factories.principal_of(factories.make_user(session, tenant, role))


def _token(session: Session, user: User) -> str:
    return accounts.issue_token(session=session, principal=factories.principal_of(user))


def _token_works(session: Session, token: str) -> bool:
    try:
        accounts.principal_for_token(session=session, token=token)
    except AuthenticationFailed:
        return False
    return True


def _password_works(session: Session, email: str, password: str) -> bool:
    try:
        accounts.authenticate(session=session, email=email, password=password)
    except AuthenticationFailed:
        return False
    return True


# --------------------------------------------------------------------------- adding users


def test_admin_adds_a_user_with_a_password(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    created = accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="new@firm.sa",
                                role=Role.AGENT, full_name="New Agent", password=NEW_PASSWORD)
    assert created.password_link is None
    assert (created.user.email, created.user.role, created.user.active) == ("new@firm.sa", Role.AGENT, True)
    assert _password_works(session, "new@firm.sa", NEW_PASSWORD)


def test_user_added_without_a_password_sets_one_with_a_single_use_link(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    created = accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="link@firm.sa", role=Role.AGENT)
    link = created.password_link
    assert link is not None and link.user_id == created.user.id
    assert timedelta(hours=71) < link.expires_at - utcnow() <= accounts.PASSWORD_LINK_TTL
    stored = session.exec(select(PasswordSetLink)).one()
    assert stored.token_hash == security.hash_token(link.token) and link.token not in stored.token_hash
    assert accounts.password_link_email(session=session, token=link.token) == "link@firm.sa"
    assert accounts.set_password_with_link(session=session, token=link.token, password=NEW_PASSWORD) == "link@firm.sa"
    assert _password_works(session, "link@firm.sa", NEW_PASSWORD)
    with pytest.raises(Invalid) as used:
        accounts.set_password_with_link(session=session, token=link.token, password="another passphrase")
    assert used.value.field == "token"
    assert _password_works(session, "link@firm.sa", NEW_PASSWORD)


def test_a_user_without_a_password_cannot_sign_in_before_using_the_link(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.OWNER)
    accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="link@firm.sa", role=Role.AGENT)
    assert not _password_works(session, "link@firm.sa", "")
    assert not _password_works(session, "link@firm.sa", "anything at all")


def test_an_expired_link_sets_nothing(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    link = accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="late@firm.sa", role=Role.AGENT).password_link
    row = session.exec(select(PasswordSetLink)).one()
    row.expires_at = utcnow() - timedelta(seconds=1)
    session.add(row)
    session.flush()
    with pytest.raises(Invalid):
        accounts.password_link_email(session=session, token=link.token)
    with pytest.raises(Invalid):
        accounts.set_password_with_link(session=session, token=link.token, password=NEW_PASSWORD)
    assert not _password_works(session, "late@firm.sa", NEW_PASSWORD)


@pytest.mark.parametrize("token", ["", "wtqs_unknown", "wtq_" + "x" * 43, "wtqs_" + "y" * 300])
def test_unknown_links_are_invalid(session: Session, token: str) -> None:
    with pytest.raises(Invalid) as err:
        accounts.set_password_with_link(session=session, token=token, password=NEW_PASSWORD)
    assert err.value.field == "token"


def test_a_link_is_refused_once_its_user_is_disabled(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    created = accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="gone@firm.sa", role=Role.AGENT)
    accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=created.user.id, active=False)
    with pytest.raises(Invalid):
        accounts.set_password_with_link(session=session, token=created.password_link.token, password=NEW_PASSWORD)


def test_a_short_password_on_the_link_page_keeps_the_link_usable(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    link = accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="s@firm.sa", role=Role.AGENT).password_link
    with pytest.raises(Invalid) as err:
        accounts.set_password_with_link(session=session, token=link.token, password="short")
    assert err.value.field == "password"
    assert accounts.password_link_email(session=session, token=link.token) == "s@firm.sa"


def test_admin_cannot_add_an_owner_but_an_owner_can(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin, owner = _actor(session, tenant, Role.ADMIN), _actor(session, tenant, Role.OWNER)
    with pytest.raises(Forbidden):
        accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="o@firm.sa", role=Role.OWNER)
    assert accounts.add_user(session=session, tenant_id=tenant.id, actor=owner, email="o@firm.sa", role=Role.OWNER).user.role is Role.OWNER


def test_added_emails_are_unique(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="dup@firm.sa", role=Role.AGENT)
    with pytest.raises(Conflict) as err:
        accounts.add_user(session=session, tenant_id=tenant.id, actor=admin, email="DUP@firm.sa", role=Role.MANAGER)
    assert err.value.field == "email"


def test_list_shows_extension_and_last_sign_in(session: Session) -> None:
    tenant = factories.make_tenant(session)
    agent = factories.make_user(session, tenant, Role.AGENT)
    factories.make_extension(session, agent, extension="1001")
    agent.last_sign_in_at = utcnow()
    session.add(agent)
    session.flush()
    listed = accounts.list_users(session=session, tenant_id=tenant.id)
    assert [(u.extension, u.last_sign_in_at) for u in listed] == [("1001", agent.last_sign_in_at)]


# --------------------------------------------------------------------------- roles and the active flag


def test_admin_changes_a_role_and_a_name(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    agent = factories.make_user(session, tenant, Role.AGENT)
    changed = accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id,
                                   role=Role.MANAGER, full_name="  Renamed  ")
    assert (changed.role, changed.full_name) == (Role.MANAGER, "Renamed")


@pytest.mark.parametrize(
    "change",
    [{"role": Role.OWNER}, {"active": False}, {"full_name": "x"}],
    ids=["promote-agent-to-owner", "disable-owner", "rename-owner"],
)
def test_an_admin_never_touches_or_makes_an_owner(session: Session, change: dict) -> None:
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, Role.OWNER)
    admin = _actor(session, tenant, Role.ADMIN)
    owner = factories.make_user(session, tenant, Role.OWNER)
    target = factories.make_user(session, tenant, Role.AGENT) if change.get("role") is Role.OWNER else owner
    before = accounts.get_user(session=session, tenant_id=tenant.id, user_id=target.id)
    with pytest.raises(Forbidden):
        accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=target.id, **change)
    assert accounts.get_user(session=session, tenant_id=tenant.id, user_id=target.id) == before


def test_an_admin_cannot_demote_an_owner(session: Session) -> None:
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, Role.OWNER)
    owner = factories.make_user(session, tenant, Role.OWNER)
    admin = _actor(session, tenant, Role.ADMIN)
    with pytest.raises(Forbidden):
        accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=owner.id, role=Role.AGENT)


def test_an_owner_promotes_demotes_and_disables_other_owners(session: Session) -> None:
    tenant = factories.make_tenant(session)
    owner = _actor(session, tenant, Role.OWNER)
    agent = factories.make_user(session, tenant, Role.AGENT)
    assert accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=agent.id, role=Role.OWNER).role is Role.OWNER
    assert accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=agent.id, role=Role.ADMIN).role is Role.ADMIN
    accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=agent.id, role=Role.OWNER)
    assert not accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=agent.id, active=False).active


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN])
def test_nobody_demotes_or_disables_themself(session: Session, role: Role) -> None:
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, Role.OWNER)
    me = _actor(session, tenant, role)
    with pytest.raises(Conflict) as demote:
        accounts.update_user(session=session, tenant_id=tenant.id, actor=me, user_id=me.user_id, role=Role.AGENT)
    with pytest.raises(Conflict) as disable:
        accounts.update_user(session=session, tenant_id=tenant.id, actor=me, user_id=me.user_id, active=False)
    assert (demote.value.field, disable.value.field) == ("role", "active")
    # A name is one's own to change.
    assert accounts.update_user(session=session, tenant_id=tenant.id, actor=me, user_id=me.user_id, full_name="Me").full_name == "Me"


def test_the_last_active_owner_is_never_demoted_or_disabled(session: Session) -> None:
    tenant = factories.make_tenant(session)
    last = factories.make_user(session, tenant, Role.OWNER)
    factories.make_user(session, tenant, Role.OWNER, active=False)  # a disabled owner does not count
    for change in ({"role": Role.ADMIN}, {"active": False}):
        with pytest.raises(Conflict) as err:
            accounts.update_user(session=session, tenant_id=tenant.id, actor=None, user_id=last.id, **change)
        assert "last active owner" in err.value.message
    assert accounts.get_user(session=session, tenant_id=tenant.id, user_id=last.id).role is Role.OWNER


def test_two_owners_demoting_each_other_at_once_leave_one_owner(engine: Engine) -> None:
    with Session(engine) as s:
        tenant = factories.make_tenant(s)
        a, b = factories.make_user(s, tenant, Role.OWNER), factories.make_user(s, tenant, Role.OWNER)
        s.commit()
        tenant_id, pa, pb = tenant.id, factories.principal_of(a), factories.principal_of(b)
    start = threading.Barrier(2)

    def demote(actor: Principal, target: Principal) -> str:
        start.wait()
        try:
            with db.session_scope() as s:
                accounts.update_user(session=s, tenant_id=tenant_id, actor=actor, user_id=target.user_id, role=Role.ADMIN)
        except Conflict:
            return "refused"
        return "done"

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(demote, [pa, pb], [pb, pa]))
    assert outcomes == ["done", "refused"]
    with Session(engine) as s:
        owners = s.exec(select(User).where(User.tenant_id == tenant_id, User.role == Role.OWNER)).all()
    assert len(owners) == 1


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT])
def test_managers_and_agents_manage_nobody(session: Session, role: Role) -> None:
    tenant = factories.make_tenant(session)
    actor = _actor(session, tenant, role)
    other = factories.make_user(session, tenant, Role.AGENT)
    with pytest.raises(Forbidden):
        accounts.update_user(session=session, tenant_id=tenant.id, actor=actor, user_id=other.id, role=Role.MANAGER)
    with pytest.raises(Forbidden):
        accounts.reset_password(session=session, tenant_id=tenant.id, actor=actor, user_id=other.id, password=NEW_PASSWORD)
    with pytest.raises(Forbidden):
        accounts.add_user(session=session, tenant_id=tenant.id, actor=actor, email="x@firm.sa", role=Role.AGENT)


def test_another_firms_user_is_not_found(session: Session) -> None:
    here, there = factories.make_tenant(session), factories.make_tenant(session)
    admin = _actor(session, here, Role.OWNER)
    foreign = factories.make_user(session, there, Role.AGENT)
    with pytest.raises(NotFound):
        accounts.update_user(session=session, tenant_id=here.id, actor=admin, user_id=foreign.id, active=False)
    with pytest.raises(NotFound):
        accounts.reset_password(session=session, tenant_id=here.id, actor=admin, user_id=foreign.id)
    assert accounts.get_user(session=session, tenant_id=there.id, user_id=foreign.id).active


def test_an_unknown_role_is_invalid(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    agent = factories.make_user(session, tenant, Role.AGENT)
    with pytest.raises(Invalid) as err:
        accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id, role="KING")
    assert err.value.field == "role"


def test_disabling_ends_every_session_at_once_and_enabling_restores_none(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    agent = factories.make_user(session, tenant, Role.AGENT)
    tokens = [_token(session, agent) for _ in range(3)]
    accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id, active=False)
    assert session.exec(select(ApiToken).where(ApiToken.user_id == agent.id, ApiToken.revoked == False)).all() == []  # noqa: E712
    accounts.update_user(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id, active=True)
    assert not any(_token_works(session, t) for t in tokens)


# --------------------------------------------------------------------------- passwords and sessions


def test_admin_sets_a_new_password_old_one_and_sessions_end(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    agent = factories.make_user(session, tenant, Role.AGENT)
    token = _token(session, agent)
    assert accounts.reset_password(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id, password=NEW_PASSWORD) is None
    assert not _token_works(session, token)
    assert not _password_works(session, agent.email, factories.PASSWORD)
    assert _password_works(session, agent.email, NEW_PASSWORD)


def test_admin_issues_a_reset_link_the_old_password_stops_and_older_links_die(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = _actor(session, tenant, Role.ADMIN)
    agent = factories.make_user(session, tenant, Role.AGENT)
    first = accounts.reset_password(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id)
    second = accounts.reset_password(session=session, tenant_id=tenant.id, actor=admin, user_id=agent.id)
    assert not _password_works(session, agent.email, factories.PASSWORD)
    with pytest.raises(Invalid):
        accounts.set_password_with_link(session=session, token=first.token, password=NEW_PASSWORD)
    accounts.set_password_with_link(session=session, token=second.token, password=NEW_PASSWORD)
    assert _password_works(session, agent.email, NEW_PASSWORD)


def test_an_admin_cannot_reset_an_owners_password_nor_their_own(session: Session) -> None:
    tenant = factories.make_tenant(session)
    owner = factories.make_user(session, tenant, Role.OWNER)
    admin = _actor(session, tenant, Role.ADMIN)
    with pytest.raises(Forbidden):
        accounts.reset_password(session=session, tenant_id=tenant.id, actor=admin, user_id=owner.id, password=NEW_PASSWORD)
    with pytest.raises(Conflict):
        accounts.reset_password(session=session, tenant_id=tenant.id, actor=admin, user_id=admin.user_id, password=NEW_PASSWORD)
    assert _password_works(session, owner.email, factories.PASSWORD)


def test_own_password_change_keeps_this_session_and_ends_the_others(engine: Engine) -> None:
    with Session(engine, expire_on_commit=False) as s:
        tenant = factories.make_tenant(s)
        user = factories.make_user(s, tenant, Role.AGENT)
        here, elsewhere = _token(s, user), _token(s, user)
        s.commit()
    with db.session_scope() as s:
        ended = accounts.change_own_password(session=s, principal=factories.principal_of(user),
                                             current_password=factories.PASSWORD, new_password=NEW_PASSWORD,
                                             keep_session_id=accounts.session_id_of(session=s, token=here))
    assert ended == 1
    with Session(engine) as s:
        assert _token_works(s, here) and not _token_works(s, elsewhere)
        assert _password_works(s, user.email, NEW_PASSWORD) and not _password_works(s, user.email, factories.PASSWORD)


def test_own_password_change_needs_the_current_one_and_is_throttled(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.errors import TooManyAttempts

    # The clock stands still: under load the first lock-out (1 s) could end before the last try.
    now = utcnow()
    monkeypatch.setattr(accounts.passwords, "utcnow", lambda: now)

    with Session(engine, expire_on_commit=False) as s:
        tenant = factories.make_tenant(s)
        user = factories.make_user(s, tenant, Role.AGENT)
        s.commit()
    outcomes = []
    for _ in range(accounts.EMAIL_THROTTLE.free_attempts + 1):
        try:
            with db.session_scope() as s:
                accounts.change_own_password(session=s, principal=factories.principal_of(user),
                                             current_password="not my password", new_password=NEW_PASSWORD)
        except Invalid as exc:
            outcomes.append(exc.field)
        except TooManyAttempts:
            outcomes.append("throttled")
    assert outcomes == ["current_password"] * accounts.EMAIL_THROTTLE.free_attempts + ["throttled"]
    with Session(engine) as s:
        assert _password_works(s, user.email, factories.PASSWORD)


def test_own_password_change_rejects_an_unfit_new_password_first(session: Session) -> None:
    tenant = factories.make_tenant(session)
    user = factories.make_user(session, tenant, Role.AGENT)
    with pytest.raises(Invalid) as err:
        accounts.change_own_password(session=session, principal=factories.principal_of(user),
                                     current_password=factories.PASSWORD, new_password="short")
    assert err.value.field == "new_password"


def test_sign_out_everywhere_ends_every_session(session: Session) -> None:
    tenant = factories.make_tenant(session)
    user = factories.make_user(session, tenant, Role.MANAGER)
    other = factories.make_user(session, tenant, Role.MANAGER)
    tokens, others = [_token(session, user) for _ in range(2)], _token(session, other)
    assert accounts.sign_out_everywhere(session=session, principal=factories.principal_of(user)) == 2
    assert not any(_token_works(session, t) for t in tokens)
    assert _token_works(session, others)


# --------------------------------------------------------------------------- audit


def test_every_change_is_audited_without_a_secret(session: Session) -> None:
    tenant = factories.make_tenant(session)
    owner = _actor(session, tenant, Role.OWNER)
    created = accounts.add_user(session=session, tenant_id=tenant.id, actor=owner, email="a@firm.sa", role=Role.AGENT)
    uid = created.user.id
    accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=uid, role=Role.MANAGER)
    accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=uid, active=False)
    accounts.update_user(session=session, tenant_id=tenant.id, actor=owner, user_id=uid, active=True)
    reset = accounts.reset_password(session=session, tenant_id=tenant.id, actor=owner, user_id=uid)
    accounts.reset_password(session=session, tenant_id=tenant.id, actor=owner, user_id=uid, password=NEW_PASSWORD)
    events = audit.list_events(session=session, tenant_id=tenant.id, object_type="user", object_id=uid)
    assert [e.action for e in reversed(events)] == [
        "user.created", "user.password_link_issued", "user.updated", "user.updated", "user.updated",
        "user.password_link_issued", "user.password_reset", "user.password_reset",
    ]
    assert events[-3].detail == {"role": ["AGENT", "MANAGER"]}
    assert all(e.actor_user_id == owner.user_id for e in events)
    stored = json.dumps([e.detail for e in session.exec(select(AuditEvent)).all()])
    for secret in (created.password_link.token, reset.token, NEW_PASSWORD):
        assert secret not in stored
