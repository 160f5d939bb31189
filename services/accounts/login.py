"""Signing in, behind an atomic throttle in the database shared by every process and edge.

Sign-ins are not tenant-scoped: an email names one person in one firm, so the email
finds the user and the user's row says which tenant the session belongs to.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import security
from services.accounts.sessions import ACCOUNT_DISABLED_MESSAGE, _new_token, _principal
from services.accounts.validation import MAX_PASSWORD_LENGTH
from services.db import dialect_insert
from services.errors import AuthenticationFailed, TooManyAttempts
from services.models import LoginThrottle, Principal, SignInResult, User, utcnow
from services.tenancy import get_owned


LOGIN_FAILED_MESSAGE = "wrong email or password"
TOO_MANY_ATTEMPTS_MESSAGE = "too many failed sign-ins; wait before trying again"


def authenticate(*, session: Session, email: str, password: str) -> Principal:
    """The principal for these credentials, or :class:`AuthenticationFailed` (no throttle: see :func:`sign_in`).

    Unknown email, wrong password and a disabled account all give the same message and
    cost the same argon2 verification; only a caller who knows the password learns
    that the account is disabled.
    """
    address = (email or "").strip().lower()
    user = session.exec(select(User).where(User.email == address)).first() if address else None
    if not password or len(password) > MAX_PASSWORD_LENGTH:
        raise AuthenticationFailed(LOGIN_FAILED_MESSAGE)
    password_ok = security.verify_password(password, user.password_hash if user else None)
    if user is None or not password_ok:
        raise AuthenticationFailed(LOGIN_FAILED_MESSAGE)
    if not user.active:
        raise AuthenticationFailed(ACCOUNT_DISABLED_MESSAGE)
    return _principal(user)


@dataclass(frozen=True)
class ThrottlePolicy:
    """How many attempts a key gets in a window before each further one must wait.

    The attempt that reaches ``free_attempts`` makes the next wait ``base_delay``; every
    further one doubles the wait, up to ``max_delay``. A window without attempts forgets.
    """

    free_attempts: int
    window: timedelta = timedelta(minutes=15)
    base_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(seconds=60)
    # The email's count starts over when its password is proven; a source address only
    # gets its one attempt back, so an attacker's own account cannot wipe its record.
    forget_on_success: bool = False

    def block_after(self, attempts: int) -> timedelta | None:
        if attempts < self.free_attempts:
            return None
        doublings = min(attempts - self.free_attempts, 30)
        return min(self.max_delay, self.base_delay * 2**doublings)


EMAIL_THROTTLE = ThrottlePolicy(free_attempts=5, forget_on_success=True)
# A firm's staff often share one public address: the address gets more room than one email.
SOURCE_THROTTLE = ThrottlePolicy(free_attempts=20)
_THROTTLE_PRUNE_BATCH = 500


@dataclass(frozen=True)
class _ThrottleKey:
    key_hash: str
    policy: ThrottlePolicy


def _throttle_keys(email: str | None, source: str | None) -> list[_ThrottleKey]:
    def digest(kind: str, value: str) -> str:
        return hashlib.sha256(f"watheeq-sign-in:{kind}:{value}".encode()).hexdigest()

    keys = [_ThrottleKey(digest("email", (email or "").strip().lower()), EMAIL_THROTTLE)]
    if source:
        keys.append(_ThrottleKey(digest("source", source), SOURCE_THROTTLE))
    # Always locked in the same order, so two attempts sharing keys never deadlock.
    return sorted(keys, key=lambda k: k.key_hash)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _locked_rows(session: Session, keys: list[_ThrottleKey]) -> list[LoginThrottle]:
    # FOR UPDATE locks the rows on PostgreSQL; SQLite has no row locks, and the insert
    # before it has already taken the database's single write lock.
    query = (
        select(LoginThrottle)
        .where(LoginThrottle.key_hash.in_([k.key_hash for k in keys]))  # type: ignore[attr-defined]
        .order_by(LoginThrottle.key_hash)
        .with_for_update()
    )
    rows = {row.key_hash: row for row in session.exec(query).all()}
    return [rows[k.key_hash] for k in keys]


def _claim_attempt(engine: Engine, keys: list[_ThrottleKey], now: datetime) -> float:
    """Count one attempt on every key and return 0, or return the seconds to wait (nothing counted).

    The check and the count are one transaction under a lock, committed before the slow
    password check: of many concurrent attempts exactly the free ones get through, in
    every process sharing the database, and a failure is on record whatever the caller
    does with its own transaction afterwards.
    """
    with Session(engine) as throttle:
        inserted = throttle.execute(
            dialect_insert(engine, LoginThrottle)
            .values([{"key_hash": k.key_hash, "attempts": 0, "window_started_at": now} for k in keys])
            .on_conflict_do_nothing(index_elements=["key_hash"])
        ).rowcount
        rows = _locked_rows(throttle, keys)
        wait = 0.0
        for key, row in zip(keys, rows):
            if row.window_started_at + key.policy.window <= now:
                row.attempts, row.window_started_at, row.blocked_until = 0, now, None
            if row.blocked_until is not None and row.blocked_until > now:
                wait = max(wait, (row.blocked_until - now).total_seconds())
        if wait == 0.0:
            for key, row in zip(keys, rows):
                row.attempts += 1
                block = key.policy.block_after(row.attempts)
                row.blocked_until = now + block if block is not None else None
        throttle.add_all(rows)
        if inserted:
            _prune_throttle(throttle, now)
        throttle.commit()
    return wait


def _prune_throttle(session: Session, now: datetime) -> None:
    # Attempts with an email nobody has leave a row each; rows whose window is over and
    # that block nothing are forgotten. SKIP LOCKED: pruning never waits for a sign-in.
    horizon = now - max(EMAIL_THROTTLE.window, SOURCE_THROTTLE.window)
    stale = (
        select(LoginThrottle.key_hash)
        .where(
            LoginThrottle.window_started_at < horizon,
            sa.or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until < now),  # type: ignore[union-attr]
        )
        .limit(_THROTTLE_PRUNE_BATCH)
        .with_for_update(skip_locked=True)
    )
    hashes = list(session.exec(stale).all())
    if hashes:
        session.execute(
            sa.delete(LoginThrottle).where(LoginThrottle.key_hash.in_(hashes)).execution_options(synchronize_session=False)  # type: ignore[attr-defined]
        )


def _release_attempt(engine: Engine, keys: list[_ThrottleKey]) -> None:
    """A proven password: the email starts over, a source address gets its attempt back."""
    with Session(engine) as throttle:
        for key, row in zip(keys, _locked_rows(throttle, keys)):
            if key.policy.forget_on_success:
                throttle.delete(row)
                continue
            row.attempts = max(0, row.attempts - 1)
            if key.policy.block_after(row.attempts) is None:
                row.blocked_until = None
            throttle.add(row)
        throttle.commit()


def sign_in(
    *,
    session: Session,
    email: str,
    password: str,
    source: str | None,
    ttl: timedelta = security.DEFAULT_TOKEN_TTL,
) -> SignInResult:
    """Throttle, check the credentials, and issue a session token: the one way to sign in.

    :class:`TooManyAttempts` when the email or the source address (``source``, the
    client's IP, None when unknown) must wait, before the password is even looked at;
    :class:`AuthenticationFailed` for wrong credentials or a disabled account (each
    such attempt counted). The throttle keeps its own transaction, committed at once;
    the token and the last sign-in time are written in ``session`` for the caller to commit.
    """
    keys = _throttle_keys(email, source)
    engine = _engine_of(session)
    wait = _claim_attempt(engine, keys, utcnow())
    if wait > 0:
        raise TooManyAttempts(TOO_MANY_ATTEMPTS_MESSAGE, retry_after=max(1, math.ceil(wait)))
    principal = authenticate(session=session, email=email, password=password)
    # Before anything is written in ``session``: on SQLite a write there would hold the
    # database's write lock that the throttle's own transaction needs.
    _release_attempt(engine, keys)
    user = get_owned(session, User, principal.tenant_id, principal.user_id, what="user")
    user.last_sign_in_at = utcnow()
    session.add(user)
    token, expires_at = _new_token(session, user, ttl)
    return SignInResult(principal=principal, token=token, expires_at=expires_at)
