"""Tenants, users, logins, the login throttle and session tokens."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import accounts, db, security
from services.errors import AuthenticationFailed, Conflict, Forbidden, Invalid, NotFound, TooManyAttempts
from services.models import ApiToken, LoginThrottle, Role, User
from tests import factories


# --------------------------------------------------------------------------- tenants


def test_create_tenant_derives_a_unique_slug(session: Session) -> None:
    a = accounts.create_tenant(session=session, name="Al-Waha Law Firm")
    b = accounts.create_tenant(session=session, name="  Al Waha   Law Firm ")
    assert (a.slug, b.slug) == ("al-waha-law-firm", "al-waha-law-firm-2")
    assert (a.region, a.timezone) == ("SA", "Asia/Riyadh")
    assert accounts.get_tenant(session=session, tenant_id=b.id) == b


def test_tenant_with_an_arabic_name_gets_a_usable_slug(session: Session) -> None:
    t = accounts.create_tenant(session=session, name="مكتب الواحة للمحاماة")
    assert t.slug == "firm" and t.name == "مكتب الواحة للمحاماة"


def test_create_tenant_normalises_region_case(session: Session) -> None:
    t = accounts.create_tenant(session=session, name="Dubai Office", region="ae", timezone="Asia/Dubai")
    assert (t.region, t.timezone) == ("AE", "Asia/Dubai")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "  "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "Firm", "region": "XX"}, "region"),
        ({"name": "Firm", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "Firm", "timezone": ""}, "timezone"),
        ({"name": "Firm", "timezone": "../../etc/passwd"}, "timezone"),
    ],
)
def test_create_tenant_rejects_bad_input_and_creates_nothing(session: Session, kwargs: dict, field: str) -> None:
    with pytest.raises(Invalid) as err:
        accounts.create_tenant(session=session, **kwargs)
    assert err.value.field == field
    from services.models import Tenant

    assert session.exec(select(Tenant)).all() == []


def test_unknown_tenant_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        accounts.get_tenant(session=session, tenant_id=424242)


# --------------------------------------------------------------------------- users


def test_operator_creates_user_with_lowercased_email_and_hashed_password(session: Session) -> None:
    tenant = factories.make_tenant(session)
    user = accounts.create_user(session=session, tenant_id=tenant.id, email=" Sara@Firm.SA ", password="s3cret-pass",
                                role=Role.AGENT, full_name=" Sara Al-Mutairi ")
    assert (user.email, user.full_name, user.role, user.active) == ("sara@firm.sa", "Sara Al-Mutairi", Role.AGENT, True)
    row = session.exec(select(User).where(User.id == user.id)).one()
    assert row.tenant_id == tenant.id
    assert "s3cret-pass" not in row.password_hash and security.verify_password("s3cret-pass", row.password_hash)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "a b@firm.sa"}, "email"),
        ({"email": ""}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 2000}, "password"),
        ({"role": "KING"}, "role"),
        ({"full_name": "n" * 201}, "full_name"),
    ],
)
def test_create_user_rejects_bad_input(session: Session, kwargs: dict, field: str) -> None:
    tenant = factories.make_tenant(session)
    args = {"email": "new@firm.sa", "password": "long-enough", "role": Role.AGENT} | kwargs
    with pytest.raises(Invalid) as err:
        accounts.create_user(session=session, tenant_id=tenant.id, **args)
    assert err.value.field == field
    assert accounts.list_users(session=session, tenant_id=tenant.id) == []


def test_duplicate_email_is_a_conflict_even_across_tenants(session: Session) -> None:
    t1, t2 = factories.make_tenant(session), factories.make_tenant(session)
    accounts.create_user(session=session, tenant_id=t1.id, email="same@firm.sa", password="long-enough", role=Role.AGENT)
    with pytest.raises(Conflict) as err:
        accounts.create_user(session=session, tenant_id=t2.id, email="SAME@firm.sa", password="long-enough", role=Role.AGENT)
    assert err.value.field == "email"


def test_create_user_in_unknown_tenant_is_not_found(session: Session) -> None:
    with pytest.raises(NotFound):
        accounts.create_user(session=session, tenant_id=999, email="a@firm.sa", password="long-enough", role=Role.OWNER)


@pytest.mark.parametrize("actor_role", [Role.MANAGER, Role.AGENT])
def test_only_owners_and_admins_create_users(session: Session, actor_role: Role) -> None:
    tenant = factories.make_tenant(session)
    actor = factories.principal_of(factories.make_user(session, tenant, actor_role))
    with pytest.raises(Forbidden):
        accounts.create_user(session=session, tenant_id=tenant.id, email="n@firm.sa", password="long-enough",
                             role=Role.AGENT, actor=actor)


def test_admin_creates_agents_but_not_owners(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = factories.principal_of(factories.make_user(session, tenant, Role.ADMIN))
    agent = accounts.create_user(session=session, tenant_id=tenant.id, email="n@firm.sa", password="long-enough",
                                 role=Role.AGENT, actor=admin)
    assert agent.role is Role.AGENT
    with pytest.raises(Forbidden):
        accounts.create_user(session=session, tenant_id=tenant.id, email="o@firm.sa", password="long-enough",
                             role=Role.OWNER, actor=admin)


def test_owner_creates_another_owner(session: Session) -> None:
    tenant = factories.make_tenant(session)
    owner = factories.principal_of(factories.make_user(session, tenant, Role.OWNER))
    user = accounts.create_user(session=session, tenant_id=tenant.id, email="o2@firm.sa", password="long-enough",
                                role=Role.OWNER, actor=owner)
    assert user.role is Role.OWNER


def test_admin_of_another_tenant_cannot_create_users_here(session: Session) -> None:
    here, there = factories.make_tenant(session), factories.make_tenant(session)
    foreign_owner = factories.principal_of(factories.make_user(session, there, Role.OWNER))
    with pytest.raises(NotFound):
        accounts.create_user(session=session, tenant_id=here.id, email="x@firm.sa", password="long-enough",
                             role=Role.AGENT, actor=foreign_owner)
    assert accounts.list_users(session=session, tenant_id=here.id) == []


def test_users_are_listed_and_read_only_within_their_tenant(session: Session) -> None:
    t1, t2 = factories.make_tenant(session), factories.make_tenant(session)
    a = factories.make_user(session, t1, Role.OWNER)
    b = factories.make_user(session, t1, Role.AGENT)
    other = factories.make_user(session, t2, Role.AGENT)
    assert [u.id for u in accounts.list_users(session=session, tenant_id=t1.id)] == [a.id, b.id]
    assert accounts.get_user(session=session, tenant_id=t1.id, user_id=b.id).email == b.email
    with pytest.raises(NotFound):
        accounts.get_user(session=session, tenant_id=t1.id, user_id=other.id)


def test_disabling_and_enabling_a_user(session: Session) -> None:
    tenant = factories.make_tenant(session)
    admin = factories.principal_of(factories.make_user(session, tenant, Role.ADMIN))
    agent = factories.make_user(session, tenant, Role.AGENT)
    assert not accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=agent.id, active=False,
                                        actor=admin).active
    assert accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=agent.id, active=True,
                                    actor=admin).active


def test_set_user_active_rules(session: Session) -> None:
    tenant, other = factories.make_tenant(session), factories.make_tenant(session)
    owner = factories.make_user(session, tenant, Role.OWNER)
    admin = factories.principal_of(factories.make_user(session, tenant, Role.ADMIN))
    manager = factories.principal_of(factories.make_user(session, tenant, Role.MANAGER))
    foreign = factories.make_user(session, other, Role.AGENT)
    with pytest.raises(Forbidden):
        accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=owner.id, active=False, actor=manager)
    with pytest.raises(Forbidden):
        accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=owner.id, active=False, actor=admin)
    with pytest.raises(Conflict):
        accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=admin.user_id, active=False, actor=admin)
    with pytest.raises(Conflict):  # the last active owner
        accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=owner.id, active=False)
    with pytest.raises(NotFound):
        accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=foreign.id, active=False, actor=admin)
    assert accounts.get_user(session=session, tenant_id=other.id, user_id=foreign.id).active


def test_an_owner_may_disable_another_owner(session: Session) -> None:
    tenant = factories.make_tenant(session)
    first = factories.principal_of(factories.make_user(session, tenant, Role.OWNER))
    second = factories.make_user(session, tenant, Role.OWNER)
    assert not accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=second.id, active=False,
                                        actor=first).active


# --------------------------------------------------------------------------- login


def test_authenticate_returns_the_principal(session: Session) -> None:
    tenant = factories.make_tenant(session)
    user = factories.make_user(session, tenant, Role.MANAGER, email="m@firm.sa")
    p = accounts.authenticate(session=session, email=" M@Firm.sa", password=factories.PASSWORD)
    assert (p.user_id, p.tenant_id, p.role, p.email) == (user.id, tenant.id, Role.MANAGER, "m@firm.sa")


def test_unknown_email_and_wrong_password_fail_alike(session: Session) -> None:
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, email="m@firm.sa")
    messages = set()
    for email, password in [("nobody@firm.sa", factories.PASSWORD), ("m@firm.sa", "wrong password"),
                            ("m@firm.sa", ""), ("", factories.PASSWORD)]:
        with pytest.raises(AuthenticationFailed) as err:
            accounts.authenticate(session=session, email=email, password=password)
        messages.add(err.value.message)
    assert messages == {accounts.LOGIN_FAILED_MESSAGE}


def test_disabled_user_is_told_only_when_the_password_is_right(session: Session) -> None:
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, email="off@firm.sa", active=False)
    with pytest.raises(AuthenticationFailed) as wrong:
        accounts.authenticate(session=session, email="off@firm.sa", password="wrong password")
    with pytest.raises(AuthenticationFailed) as right:
        accounts.authenticate(session=session, email="off@firm.sa", password=factories.PASSWORD)
    assert wrong.value.message == accounts.LOGIN_FAILED_MESSAGE
    assert right.value.message == accounts.ACCOUNT_DISABLED_MESSAGE


# --------------------------------------------------------------------------- sign-in and its throttle


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> list[datetime]:
    """The throttle's clock, stopped; tests move it by changing ``frozen_now[0]``."""
    now = [datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)]
    monkeypatch.setattr(accounts.login, "utcnow", lambda: now[0])
    return now


def _committed_user(engine: Engine, role: Role = Role.AGENT, *, active: bool = True) -> str:
    # sign_in keeps its throttle in a transaction of its own: the data must be committed.
    with Session(engine) as s:
        tenant = factories.make_tenant(s)
        factories.make_user(s, tenant, Role.OWNER)
        email = factories.make_user(s, tenant, role, active=active).email
        s.commit()
    return email


def _try_sign_in(email: str, password: str, source: str | None = "10.0.0.1") -> str:
    """'ok', 'denied' (wrong credentials), 'disabled' or 'throttled', in a transaction of its own."""
    try:
        with db.session_scope() as s:
            accounts.sign_in(session=s, email=email, password=password, source=source)
    except TooManyAttempts as exc:
        assert exc.retry_after >= 1
        return "throttled"
    except AuthenticationFailed as exc:
        return "disabled" if exc.message == accounts.ACCOUNT_DISABLED_MESSAGE else "denied"
    return "ok"


def test_sign_in_issues_a_working_token_and_records_the_time(engine: Engine, frozen_now: list[datetime]) -> None:
    email = _committed_user(engine, Role.MANAGER)
    with db.session_scope() as s:
        result = accounts.sign_in(session=s, email=email.upper(), password=factories.PASSWORD, source="10.0.0.1")
    with db.session_scope() as s:
        assert accounts.principal_for_token(session=s, token=result.token) == result.principal
        user = accounts.get_user(session=s, tenant_id=result.principal.tenant_id, user_id=result.principal.user_id)
    assert user.last_sign_in_at == frozen_now[0]
    assert result.expires_at > datetime.now(timezone.utc)


def test_forty_concurrent_wrong_passwords_let_only_the_free_attempts_through(
    engine: Engine, frozen_now: list[datetime]
) -> None:
    email = _committed_user(engine)
    start = threading.Barrier(40)

    def attempt(i: int) -> str:
        start.wait()
        return _try_sign_in(email, "wrong password", source=f"10.0.{i}.1")

    with ThreadPoolExecutor(max_workers=40) as pool:
        outcomes = list(pool.map(attempt, range(40)))
    assert outcomes.count("denied") == accounts.EMAIL_THROTTLE.free_attempts
    assert outcomes.count("throttled") == 40 - accounts.EMAIL_THROTTLE.free_attempts
    # The right password waits like any other attempt during the lock-out.
    assert _try_sign_in(email, factories.PASSWORD) == "throttled"


def test_lock_out_expires_then_doubles_and_success_starts_over(engine: Engine, frozen_now: list[datetime]) -> None:
    email = _committed_user(engine)
    assert [_try_sign_in(email, "wrong password") for _ in range(6)] == ["denied"] * 5 + ["throttled"]
    frozen_now[0] += timedelta(seconds=1)
    assert _try_sign_in(email, "wrong password") == "denied"
    frozen_now[0] += timedelta(seconds=1)
    assert _try_sign_in(email, factories.PASSWORD) == "throttled"  # the second wait is 2 s
    frozen_now[0] += timedelta(seconds=1)
    assert _try_sign_in(email, factories.PASSWORD) == "ok"
    assert [_try_sign_in(email, "wrong password") for _ in range(5)] == ["denied"] * 5


def test_failures_outside_the_window_are_forgotten(engine: Engine, frozen_now: list[datetime]) -> None:
    email = _committed_user(engine)
    for _ in range(5):
        _try_sign_in(email, "wrong password")
    assert _try_sign_in(email, factories.PASSWORD) == "throttled"
    frozen_now[0] += accounts.EMAIL_THROTTLE.window
    assert _try_sign_in(email, factories.PASSWORD) == "ok"


def test_one_source_spraying_many_emails_is_throttled(engine: Engine, frozen_now: list[datetime]) -> None:
    free = accounts.SOURCE_THROTTLE.free_attempts
    outcomes = [_try_sign_in(f"guess{i}@nowhere.test", "wrong password", source="10.9.9.9") for i in range(free + 1)]
    assert outcomes == ["denied"] * free + ["throttled"]
    email = _committed_user(engine)
    assert _try_sign_in(email, factories.PASSWORD, source="10.9.9.9") == "throttled"
    assert _try_sign_in(email, factories.PASSWORD, source="10.1.1.1") == "ok"


def test_a_success_refunds_the_source_but_does_not_wipe_its_failures(engine: Engine, frozen_now: list[datetime]) -> None:
    free = accounts.SOURCE_THROTTLE.free_attempts
    email = _committed_user(engine)
    for i in range(free - 1):
        _try_sign_in(f"guess{i}@nowhere.test", "wrong password", source="10.9.9.9")
    assert _try_sign_in(email, factories.PASSWORD, source="10.9.9.9") == "ok"
    # One more failure reaches the limit: the success did not reset the address.
    assert _try_sign_in("guess-last@nowhere.test", "wrong password", source="10.9.9.9") == "denied"
    assert _try_sign_in("another@nowhere.test", "wrong password", source="10.9.9.9") == "throttled"


def test_throttle_is_shared_by_every_process_on_the_database(engine: Engine, frozen_now: list[datetime]) -> None:
    email = _committed_user(engine)
    for _ in range(5):
        _try_sign_in(email, "wrong password")
    # A second engine on the same database: what another worker process would have.
    other = db.create_db_engine(engine.url.render_as_string(hide_password=False))
    try:
        with Session(other) as s, pytest.raises(TooManyAttempts):
            accounts.sign_in(session=s, email=email, password=factories.PASSWORD, source=None)
    finally:
        other.dispose()


def test_throttle_rows_name_no_email_or_address(engine: Engine, frozen_now: list[datetime]) -> None:
    email = _committed_user(engine)
    _try_sign_in(email, "wrong password", source="10.7.7.7")
    with Session(engine) as s:
        rows = s.exec(select(LoginThrottle)).all()
    assert len(rows) == 2
    assert all(email not in r.key_hash and "10.7.7.7" not in r.key_hash for r in rows)


def test_disabled_account_is_named_only_with_the_right_password(engine: Engine, frozen_now: list[datetime]) -> None:
    email = _committed_user(engine, active=False)
    assert _try_sign_in(email, "wrong password") == "denied"
    assert _try_sign_in(email, factories.PASSWORD) == "disabled"


# --------------------------------------------------------------------------- tokens


def test_token_identifies_its_user_until_revoked(session: Session) -> None:
    tenant = factories.make_tenant(session)
    principal = factories.principal_of(factories.make_user(session, tenant, Role.AGENT))
    token = accounts.issue_token(session=session, principal=principal)
    assert accounts.principal_for_token(session=session, token=token) == principal
    stored = session.exec(select(ApiToken)).one()
    assert stored.token_hash != token and token not in stored.token_hash
    accounts.revoke_token(session=session, token=token)
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)
    accounts.revoke_token(session=session, token="wtq_unknown")


def test_expired_token_is_rejected(session: Session) -> None:
    tenant = factories.make_tenant(session)
    principal = factories.principal_of(factories.make_user(session, tenant))
    token = accounts.issue_token(session=session, principal=principal, ttl=timedelta(minutes=5))
    row = session.exec(select(ApiToken)).one()
    row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    session.add(row)
    session.flush()
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)


@pytest.mark.parametrize("token", ["", "wtq_" + "x" * 43, "not-a-token", "wtq_" + "y" * 500])
def test_unknown_tokens_are_rejected(session: Session, token: str) -> None:
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)


def test_disabled_users_token_stops_working(session: Session) -> None:
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, Role.OWNER)
    user = factories.make_user(session, tenant, Role.AGENT)
    token = accounts.issue_token(session=session, principal=factories.principal_of(user))
    accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=user.id, active=False)
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)
    with pytest.raises(AuthenticationFailed):
        accounts.issue_token(session=session, principal=factories.principal_of(user))


def test_token_cannot_be_issued_for_a_principal_claiming_another_tenant(session: Session) -> None:
    t1, t2 = factories.make_tenant(session), factories.make_tenant(session)
    user = factories.make_user(session, t1)
    forged = factories.principal_of(user).model_copy(update={"tenant_id": t2.id})
    with pytest.raises(NotFound):
        accounts.issue_token(session=session, principal=forged)


def test_token_principal_carries_the_stored_role_not_the_issued_one(session: Session) -> None:
    tenant = factories.make_tenant(session)
    user = factories.make_user(session, tenant, Role.AGENT)
    claimed = factories.principal_of(user).model_copy(update={"role": Role.OWNER})
    token = accounts.issue_token(session=session, principal=claimed)
    assert accounts.principal_for_token(session=session, token=token).role is Role.AGENT


def test_nonpositive_ttl_is_invalid(session: Session) -> None:
    tenant = factories.make_tenant(session)
    principal = factories.principal_of(factories.make_user(session, tenant))
    with pytest.raises(Invalid):
        accounts.issue_token(session=session, principal=principal, ttl=timedelta(0))
