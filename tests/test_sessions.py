"""Dashboard sessions end on the server: signed out elsewhere, revoked, disabled or idle.

Idle time is the token row's ``last_used_at``, written by the server; nothing the
browser says can move it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from services import accounts
from services.accounts import SessionEnd
from services.errors import AuthenticationFailed
from services.models import ApiToken, Role
from tests import factories


def _signed_in(session: Session, role: Role = Role.AGENT):
    tenant = factories.make_tenant(session)
    factories.make_user(session, tenant, Role.OWNER)
    user = factories.make_user(session, tenant, role)
    token = accounts.issue_token(session=session, principal=factories.principal_of(user))
    started = accounts.start_dashboard_session(session=session, token=token)
    return tenant, user, token, started


def _row(session: Session, session_id: int) -> ApiToken:
    return session.exec(select(ApiToken).where(ApiToken.id == session_id)).one()


def _last_used(session: Session, session_id: int, ago: timedelta) -> None:
    row = _row(session, session_id)
    row.last_used_at = datetime.now(timezone.utc) - ago
    session.add(row)
    session.flush()


def test_a_dashboard_session_names_its_user_by_its_id(session: Session) -> None:
    _, user, _, started = _signed_in(session)
    assert started.ended is None and started.principal is not None
    assert started.principal.user_id == user.id and started.session_id > 0
    again = accounts.check_session(session=session, session_id=started.session_id, activity=True)
    assert again.principal == started.principal


def test_signing_out_ends_the_session_for_every_tab_that_shares_it(session: Session) -> None:
    _, _, token, started = _signed_in(session)
    accounts.revoke_session(session=session, session_id=started.session_id)
    ended = accounts.check_session(session=session, session_id=started.session_id, activity=False)
    assert (ended.principal, ended.ended) == (None, SessionEnd.EXPIRED)
    assert accounts.start_dashboard_session(session=session, token=token).ended is SessionEnd.EXPIRED
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)


def test_revoking_a_users_tokens_ends_all_their_sessions_and_no_one_elses(session: Session) -> None:
    tenant, user, token, started = _signed_in(session)
    second = accounts.start_dashboard_session(
        session=session, token=accounts.issue_token(session=session, principal=factories.principal_of(user))
    )
    colleague = factories.make_user(session, tenant, Role.AGENT)
    theirs = accounts.start_dashboard_session(
        session=session, token=accounts.issue_token(session=session, principal=factories.principal_of(colleague))
    )
    assert accounts.revoke_user_tokens(session=session, tenant_id=tenant.id, user_id=user.id) == 2
    for s in (started, second):
        assert accounts.check_session(session=session, session_id=s.session_id, activity=False).ended is SessionEnd.EXPIRED
    assert accounts.check_session(session=session, session_id=theirs.session_id, activity=False).principal is not None


def test_revoking_tokens_is_scoped_to_the_firm(session: Session) -> None:
    _, user, _, started = _signed_in(session)
    other_firm = factories.make_tenant(session)
    assert accounts.revoke_user_tokens(session=session, tenant_id=other_firm.id, user_id=user.id) == 0
    assert accounts.check_session(session=session, session_id=started.session_id, activity=False).principal is not None


def test_a_disabled_users_session_ends_with_that_reason(session: Session) -> None:
    tenant, user, _, started = _signed_in(session)
    accounts.set_user_active(session=session, tenant_id=tenant.id, user_id=user.id, active=False)
    ended = accounts.check_session(session=session, session_id=started.session_id, activity=True)
    assert (ended.principal, ended.ended) == (None, SessionEnd.DISABLED)


def test_an_expired_session_ends(session: Session) -> None:
    _, _, _, started = _signed_in(session)
    row = _row(session, started.session_id)
    row.expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    session.add(row)
    session.flush()
    assert accounts.check_session(session=session, session_id=started.session_id, activity=True).ended is SessionEnd.EXPIRED


def test_an_unknown_session_id_is_ended(session: Session) -> None:
    assert accounts.check_session(session=session, session_id=987654, activity=True).ended is SessionEnd.EXPIRED


def test_thirty_idle_minutes_end_and_revoke_the_session(session: Session) -> None:
    _, _, token, started = _signed_in(session)
    _last_used(session, started.session_id, accounts.SESSION_IDLE_TIMEOUT + timedelta(minutes=1))
    ended = accounts.check_session(session=session, session_id=started.session_id, activity=True)
    assert (ended.principal, ended.ended) == (None, SessionEnd.IDLE)
    assert _row(session, started.session_id).revoked
    # Activity after the timeout does not bring it back, by any door.
    assert accounts.check_session(session=session, session_id=started.session_id, activity=True).principal is None
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)


def test_an_idle_session_stays_idle_for_every_check_after_the_one_that_ended_it(session: Session) -> None:
    # Two tabs, or a tab's timer racing the user's click, check one after another: the first
    # revokes the idle session, and the second must still say why it ended (not "expired").
    _, _, token, started = _signed_in(session)
    _last_used(session, started.session_id, accounts.SESSION_IDLE_TIMEOUT + timedelta(minutes=1))
    assert accounts.check_session(session=session, session_id=started.session_id, activity=False).ended is SessionEnd.IDLE
    assert _row(session, started.session_id).revoked
    assert accounts.check_session(session=session, session_id=started.session_id, activity=True).ended is SessionEnd.IDLE
    assert accounts.start_dashboard_session(session=session, token=token).ended is SessionEnd.IDLE
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)
    assert accounts.ended_sessions(session=session, session_ids=[started.session_id]) == {started.session_id}


def test_activity_keeps_the_session_alive_and_timers_do_not(session: Session) -> None:
    _, _, _, started = _signed_in(session)
    _last_used(session, started.session_id, timedelta(minutes=29))
    # The dashboard's own timers (activity=False) check without counting as use.
    assert accounts.check_session(session=session, session_id=started.session_id, activity=False).principal is not None
    _last_used(session, started.session_id, timedelta(minutes=31))
    assert accounts.check_session(session=session, session_id=started.session_id, activity=False).ended is SessionEnd.IDLE

    _, _, _, other = _signed_in(session)
    _last_used(session, other.session_id, timedelta(minutes=29))
    assert accounts.check_session(session=session, session_id=other.session_id, activity=True).principal is not None
    last_used = _row(session, other.session_id).last_used_at
    assert last_used is not None and datetime.now(timezone.utc) - last_used < timedelta(seconds=5)


def test_last_use_is_written_at_most_once_a_minute(session: Session) -> None:
    _, _, _, started = _signed_in(session)
    _last_used(session, started.session_id, timedelta(seconds=20))
    before = _row(session, started.session_id).last_used_at
    accounts.check_session(session=session, session_id=started.session_id, activity=True)
    assert _row(session, started.session_id).last_used_at == before


def test_a_scripts_token_has_no_idle_limit_but_a_dashboard_session_does(session: Session) -> None:
    tenant = factories.make_tenant(session)
    principal = factories.principal_of(factories.make_user(session, tenant))
    script_token = accounts.issue_token(session=session, principal=principal)
    row = session.exec(select(ApiToken)).one()
    assert row.idle_timeout_seconds is None
    row.last_used_at = datetime.now(timezone.utc) - timedelta(hours=3)
    session.add(row)
    session.flush()
    assert accounts.principal_for_token(session=session, token=script_token).user_id == principal.user_id

    started = accounts.start_dashboard_session(session=session, token=accounts.issue_token(session=session, principal=principal))
    assert _row(session, started.session_id).idle_timeout_seconds == accounts.SESSION_IDLE_TIMEOUT.total_seconds()


def test_the_api_sees_the_same_idle_end(session: Session) -> None:
    _, _, token, started = _signed_in(session)
    _last_used(session, started.session_id, timedelta(minutes=31))
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)


def test_a_role_change_is_seen_at_the_next_check(session: Session) -> None:
    tenant, user, _, started = _signed_in(session, Role.ADMIN)
    from services.models import User

    row = session.exec(select(User).where(User.id == user.id)).one()
    row.role = Role.AGENT
    session.add(row)
    session.flush()
    now = accounts.check_session(session=session, session_id=started.session_id, activity=True)
    assert now.principal is not None and now.principal.role is Role.AGENT


def test_an_api_request_records_the_tokens_use_at_most_once_a_minute(session: Session) -> None:
    _, _, token, started = _signed_in(session)
    _last_used(session, started.session_id, timedelta(seconds=20))
    before = _row(session, started.session_id).last_used_at
    accounts.principal_for_token(session=session, token=token)
    session.expire_all()
    assert _row(session, started.session_id).last_used_at == before

    _last_used(session, started.session_id, timedelta(minutes=2))
    accounts.principal_for_token(session=session, token=token)
    session.expire_all()
    last_used = _row(session, started.session_id).last_used_at
    assert last_used is not None and datetime.now(timezone.utc) - last_used < timedelta(seconds=5)


def test_the_api_refuses_a_disabled_users_token_even_when_it_is_not_revoked(session: Session) -> None:
    _, user, token, started = _signed_in(session)
    user.active = False
    session.add(user)
    session.flush()
    assert not _row(session, started.session_id).revoked
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)


def test_the_api_revokes_a_token_idle_too_long(session: Session) -> None:
    _, _, token, started = _signed_in(session)
    _last_used(session, started.session_id, timedelta(minutes=31))
    with pytest.raises(AuthenticationFailed):
        accounts.principal_for_token(session=session, token=token)
    session.expire_all()
    assert _row(session, started.session_id).revoked
