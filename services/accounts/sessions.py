"""Session tokens: issuing, resolving to a principal, revoking; and the dashboard's
sessions (idle timeout measured on the server, checked on every event)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from services import security
from services.accounts.validation import MAX_TOKEN_LENGTH
from services.errors import AuthenticationFailed, Invalid
from services.models import ApiToken, Principal, User, utcnow
from services.tenancy import get_owned, same_tenant, tenant_select


ACCOUNT_DISABLED_MESSAGE = "this account is disabled"
TOKEN_INVALID_MESSAGE = "the session has expired or is not valid; sign in again"


def _principal(user: User) -> Principal:
    return Principal(user_id=user.id, tenant_id=user.tenant_id, role=user.role, email=user.email, full_name=user.full_name)


def issue_token(*, session: Session, principal: Principal, ttl: timedelta = security.DEFAULT_TOKEN_TTL) -> str:
    """A new bearer token for ``principal``; only its hash is stored, so this is the one chance to read it."""
    user = get_owned(session, User, principal.tenant_id, principal.user_id, what="user")
    return _new_token(session, user, ttl)[0]


def _new_token(session: Session, user: User, ttl: timedelta) -> tuple[str, datetime]:
    if ttl <= timedelta(0):
        raise Invalid("ttl", "a token must live for a positive time")
    if not user.active:
        raise AuthenticationFailed(ACCOUNT_DISABLED_MESSAGE)
    token = security.new_token()
    expires_at = security.token_expiry(ttl)
    session.add(
        ApiToken(
            tenant_id=user.tenant_id,
            user_id=user.id,
            token_hash=security.hash_token(token),
            expires_at=expires_at,
            last_used_at=datetime.now(timezone.utc),
        )
    )
    session.flush()
    return token, expires_at


def _token_hash(token: str | None) -> str | None:
    """The stored hash of ``token``; None for what cannot be one of our tokens."""
    if not token or not could_be_token(token):
        return None
    return security.hash_token(token)


def could_be_token(token: str) -> bool:
    """Whether ``token`` has the shape of one of ours (no lookup: it may still be unknown)."""
    return token.startswith(security.TOKEN_PREFIX) and len(token) <= MAX_TOKEN_LENGTH


def _token_row(session: Session, token: str | None) -> ApiToken | None:
    token_hash = _token_hash(token)
    if token_hash is None:
        return None
    # The hash names the token across tenants; the row then says whose it is.
    return session.exec(select(ApiToken).where(ApiToken.token_hash == token_hash)).first()


# Every API request resolves its token: what the checks need of the token's row and its
# user, in one Core query built once (no ORM objects: the request needs a Principal only).
_api_token = ApiToken.__table__
_TOKEN_AND_USER = (
    sa.select(
        ApiToken.id,
        ApiToken.revoked,
        ApiToken.expires_at,
        ApiToken.last_used_at,
        ApiToken.created_at,
        ApiToken.idle_timeout_seconds,
        User.id.label("user_id"),
        User.tenant_id.label("user_tenant_id"),
        User.role,
        User.email,
        User.full_name,
        User.active,
    )
    .select_from(ApiToken)
    .outerjoin(User, sa.and_(User.id == ApiToken.user_id, same_tenant(User, ApiToken)))
    .where(ApiToken.token_hash == sa.bindparam("token_hash"))
)
_TOUCH_TOKEN = _api_token.update().where(_api_token.c.id == sa.bindparam("token_id")).values(last_used_at=sa.bindparam("now"))
_REVOKE_TOKEN = _api_token.update().where(_api_token.c.id == sa.bindparam("token_id")).values(revoked=True)


def principal_for_token(*, session: Session, token: str) -> Principal:
    """Who ``token`` belongs to, or :class:`AuthenticationFailed` when unknown, expired,
    revoked, idle too long or its user is disabled. A use counts as activity."""
    token_hash = _token_hash(token)
    connection = session.connection()
    # The hash names the token across tenants; the row then says whose it is.
    found = connection.execute(_TOKEN_AND_USER, {"token_hash": token_hash}).first() if token_hash else None
    if found is None:
        raise AuthenticationFailed(TOKEN_INVALID_MESSAGE)
    now = datetime.now(timezone.utc)
    ended = _ended(found, found.active, now)
    if ended is SessionEnd.IDLE and not found.revoked:
        connection.execute(_REVOKE_TOKEN, {"token_id": found.id})
    if ended is not None:
        raise AuthenticationFailed(TOKEN_INVALID_MESSAGE)
    if now - _last_use(found) >= LAST_USE_RESOLUTION:
        connection.execute(_TOUCH_TOKEN, {"token_id": found.id, "now": now})
    return Principal(
        user_id=found.user_id, tenant_id=found.user_tenant_id, role=found.role, email=found.email, full_name=found.full_name
    )


def revoke_token(*, session: Session, token: str) -> None:
    """End the session of ``token``; an unknown token is already as good as revoked."""
    row = _token_row(session, token)
    if row is not None and not row.revoked:
        row.revoked = True
        session.add(row)
        session.flush()


# A dashboard tab left alone this long is signed out; scripts' tokens have no idle limit.
SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
# Writing the last use on every event would turn each one into a write; a minute of slack
# on a 30-minute timeout is invisible to the user.
LAST_USE_RESOLUTION = timedelta(minutes=1)


class SessionEnd(str, enum.Enum):
    """Why a session no longer acts for its user (the UI shows a message for each)."""

    EXPIRED = "session_expired"  # unknown, expired or revoked (signed out, here or elsewhere)
    IDLE = "idle_logged_out"
    DISABLED = "account_disabled"


@dataclass(frozen=True)
class SessionCheck:
    """A session's state: its principal while it is valid, otherwise why it ended."""

    session_id: int
    principal: Principal | None
    ended: SessionEnd | None = None


def _last_use(token: Any) -> datetime:
    return token.last_used_at or token.created_at


def _ended(token: Any, user_active: bool | None, now: datetime) -> SessionEnd | None:
    """Why the session of ``token`` (its row, or a row of its columns) no longer holds; None while it does."""
    # A disabled user learns why, even when disabling also revoked the tokens.
    if not user_active:
        return SessionEnd.DISABLED
    if token.expires_at <= now:
        return SessionEnd.EXPIRED
    # Idle before revoked: the first check to find a session idle revokes it, and every later
    # check (another tab, the tab's own timer racing the user's click) must give the same reason.
    if token.idle_timeout_seconds is not None and now - _last_use(token) > timedelta(seconds=token.idle_timeout_seconds):
        return SessionEnd.IDLE
    if token.revoked:
        return SessionEnd.EXPIRED
    return None


def _check_session(session: Session, row: ApiToken | None, user: User | None, *, activity: bool) -> SessionCheck:
    now = datetime.now(timezone.utc)
    if row is None:
        return SessionCheck(0, None, SessionEnd.EXPIRED)
    ended = _ended(row, user.active if user is not None else None, now)
    if ended is SessionEnd.IDLE and not row.revoked:
        row.revoked = True
        session.add(row)
        session.flush()
    if ended is not None:
        return SessionCheck(row.id, None, ended)
    if activity and now - _last_use(row) >= LAST_USE_RESOLUTION:
        row.last_used_at = now
        session.add(row)
        session.flush()
    assert user is not None
    return SessionCheck(row.id, _principal(user))


def start_dashboard_session(*, session: Session, token: str) -> SessionCheck:
    """Adopt ``token`` for a dashboard tab (at sign-in, or a new tab finding it in the browser).

    From now on it ends after :data:`SESSION_IDLE_TIMEOUT` without activity. Opening the
    tab counts as activity. The tab then names the session by ``session_id`` only.
    """
    row = _token_row(session, token)
    user = session.exec(tenant_select(User, row.tenant_id).where(User.id == row.user_id)).first() if row else None
    if row is not None and row.idle_timeout_seconds is None:
        row.idle_timeout_seconds = int(SESSION_IDLE_TIMEOUT.total_seconds())
        session.add(row)
        session.flush()
    return _check_session(session, row, user, activity=True)


def check_session(*, session: Session, session_id: int, activity: bool) -> SessionCheck:
    """The state of session ``session_id``: one lookup by primary key (token row and its user).

    ``activity`` is True for what the user did (it keeps the session alive, written at most
    once per :data:`LAST_USE_RESOLUTION`) and False for the dashboard's own timers. An idle
    session is revoked here.
    """
    found = session.exec(
        select(ApiToken, User)
        .join(User, sa.and_(User.id == ApiToken.user_id, same_tenant(User, ApiToken)))
        .where(ApiToken.id == session_id)
    ).first()
    row, user = found if found is not None else (None, None)
    return _check_session(session, row, user, activity=activity)


def ended_sessions(*, session: Session, session_ids: list[int]) -> set[int]:
    """Which of these dashboard sessions no longer hold (unknown, revoked, expired, idle too
    long, user disabled): one query for a whole worker's open tabs. Changes nothing: the
    tab's own check then ends it with the reason."""
    ids = sorted(set(session_ids))
    if not ids:
        return set()
    now = datetime.now(timezone.utc)
    rows = session.exec(
        select(ApiToken, User)
        .join(User, sa.and_(User.id == ApiToken.user_id, same_tenant(User, ApiToken)))
        .where(ApiToken.id.in_(ids))  # type: ignore[union-attr]
    ).all()
    holding = {row.id for row, user in rows if _ended(row, user.active, now) is None}
    return set(ids) - holding


def revoke_session(*, session: Session, session_id: int) -> None:
    """Sign session ``session_id`` out (the dashboard's "log out"); already ended is fine."""
    row = session.exec(select(ApiToken).where(ApiToken.id == session_id)).first()
    if row is not None and not row.revoked:
        row.revoked = True
        session.add(row)
        session.flush()


def session_id_of(*, session: Session, token: str | None) -> int | None:
    """The id of ``token``'s session (what a dashboard tab keeps instead of the token), if known."""
    row = _token_row(session, token)
    return row.id if row is not None else None


def revoke_user_tokens(*, session: Session, tenant_id: int, user_id: int, keep_session_id: int | None = None) -> int:
    """End every live session of one user at once (all but ``keep_session_id``); their open
    dashboard tabs are signed out at their next check. Returns how many ended."""
    query = tenant_select(ApiToken, tenant_id).where(
        ApiToken.user_id == user_id, ApiToken.revoked == False, ApiToken.expires_at > utcnow()  # noqa: E712
    )
    if keep_session_id:
        query = query.where(ApiToken.id != keep_session_id)
    rows = session.exec(query).all()
    for row in rows:
        row.revoked = True
        session.add(row)
    session.flush()
    return len(rows)
