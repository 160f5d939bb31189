"""Tenants, users, sign-in and session tokens, and the rules of managing accounts.

Sign-ins are not tenant-scoped: an email names one person in one firm, so the email
finds the user and the user's row says which tenant the session belongs to. Every
other function here is scoped by the tenant it is given.

The rules of who may change whose account live here, once, for the dashboard, the API
and the operators' CLI alike: only an OWNER or ADMIN manages users; an ADMIN never
creates, changes or disables an OWNER; nobody changes their own role or disables
themselves; a firm always keeps one active OWNER. Every change is written to the audit
log in the same transaction, never with a password or a link token in it.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services import audit, phones, security
from services.authz import Permission, allowed
from services.db import dialect_insert
from services.errors import AuthenticationFailed, Conflict, Forbidden, Invalid, NotFound, TooManyAttempts
from services.models import (
    ApiToken,
    LoginThrottle,
    PasswordLinkPublic,
    PasswordSetLink,
    Principal,
    Role,
    SignInResult,
    SipExtension,
    Tenant,
    TenantPublic,
    User,
    UserCreated,
    UserPublic,
    utcnow,
)
from services.names import clean_name
from services.tenancy import get_owned, same_tenant, tenant_select

MIN_PASSWORD_LENGTH = 8
# argon2 hashes whatever it is given; a cap keeps a huge body from costing seconds.
MAX_PASSWORD_LENGTH = 1024
LOGIN_FAILED_MESSAGE = "wrong email or password"
ACCOUNT_DISABLED_MESSAGE = "this account is disabled"
TOKEN_INVALID_MESSAGE = "the session has expired or is not valid; sign in again"
TOO_MANY_ATTEMPTS_MESSAGE = "too many failed sign-ins; wait before trying again"
LINK_INVALID_MESSAGE = "this link is not valid: it has expired, was already used or was replaced"
CURRENT_PASSWORD_WRONG_MESSAGE = "the current password is not right"
PASSWORD_LINK_TTL = timedelta(hours=72)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


# --------------------------------------------------------------------------- validation


def normalise_email(raw: str | None, *, field: str = "email") -> str:
    """The lowercased address, or :class:`Invalid` when it is not one."""
    email = (raw or "").strip().lower()
    if not email:
        raise Invalid(field, "an email address is required")
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid(field, "not a valid email address")
    return email


def _slug_base(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    # Names written only in Arabic script have no ASCII letters left.
    return slug or "firm"


def _unique_slug(session: Session, name: str) -> str:
    base = _slug_base(name)
    taken = set(session.exec(select(Tenant.slug).where(Tenant.slug.startswith(base))).all())  # type: ignore[attr-defined]
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _tenant_public(tenant: Tenant) -> TenantPublic:
    return TenantPublic(id=tenant.id, name=tenant.name, slug=tenant.slug, region=tenant.region, timezone=tenant.timezone)


def _user_public(user: User, extension: str | None = None) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        active=user.active,
        extension=extension,
        last_sign_in_at=user.last_sign_in_at,
    )


def _principal(user: User) -> Principal:
    return Principal(user_id=user.id, tenant_id=user.tenant_id, role=user.role, email=user.email, full_name=user.full_name)


# --------------------------------------------------------------------------- tenants


def create_tenant(*, session: Session, name: str, region: str = "SA", timezone: str = "Asia/Riyadh") -> TenantPublic:
    """A new firm; its slug is derived from the name and made unique."""
    name = clean_name(name)
    if not name:
        raise Invalid("name", "a firm name is required")
    if len(name) > 200:
        raise Invalid("name", "a firm name is at most 200 characters")
    region = (region or "").strip().upper()
    if not phones.is_valid_region(region):
        raise Invalid("region", f"'{region}' is not a supported phone region (ISO 3166 code such as SA)")
    tz = (timezone or "").strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid("timezone", f"'{tz}' is not a known time zone (such as Asia/Riyadh)") from None
    tenant = Tenant(name=name, slug=_unique_slug(session, name), region=region, timezone=tz)
    session.add(tenant)
    session.flush()
    return _tenant_public(tenant)


def _tenant_row(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


def get_tenant(*, session: Session, tenant_id: int) -> TenantPublic:
    """The firm ``tenant_id``, or :class:`NotFound`."""
    return _tenant_public(_tenant_row(session, tenant_id))


# --------------------------------------------------------------------------- users


def _check_password(password: str | None, field: str = "password") -> str:
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(field, f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(field, f"a password is at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise Invalid("role", "role must be one of OWNER, ADMIN, MANAGER, AGENT") from None


def _check_full_name(full_name: str | None) -> str:
    full_name = clean_name(full_name)
    if len(full_name) > 200:
        raise Invalid("full_name", "a name is at most 200 characters")
    return full_name


def _require_admin_of(actor: Principal, tenant_id: int) -> None:
    # Another firm's admin learns nothing about this firm, not even that it exists.
    if actor.tenant_id != tenant_id:
        raise NotFound("tenant not found")
    if not allowed(actor, Permission.MANAGE_USERS):
        raise Forbidden("only an owner or an admin may manage users")


def _require_may_touch(actor: Principal | None, user: User) -> None:
    if actor is not None and user.role is Role.OWNER and not allowed(actor, Permission.MANAGE_OWNERS):
        raise Forbidden("only an owner may change an owner's account")


def _unusable_password_hash() -> str:
    # A hash of a random secret nobody knows: the account exists but cannot sign in
    # until its set-password link is used, and verifying it costs the usual argon2 time.
    return security.hash_password(security.new_link_token())


def _lock_tenant(session: Session, tenant_id: int) -> None:
    # A no-op write on the firm's row: PostgreSQL locks the row, SQLite takes its one
    # write lock. Two changes to the firm's owners then run one after the other, so two
    # owners demoting each other at once cannot leave the firm without an owner.
    session.execute(
        sa.update(Tenant).where(Tenant.id == tenant_id).values(slug=Tenant.slug).execution_options(synchronize_session=False)
    )


def _has_other_active_owner(session: Session, tenant_id: int, user_id: int) -> bool:
    query = tenant_select(User, tenant_id).where(User.role == Role.OWNER, User.active, User.id != user_id)
    return session.exec(query).first() is not None


def create_user(
    *,
    session: Session,
    tenant_id: int,
    email: str,
    password: str | None,
    role: Role,
    full_name: str = "",
    actor: Principal | None = None,
) -> UserPublic:
    """A new user of the firm; 409 :class:`Conflict` when the email is taken (in any firm).

    ``actor`` None is the operator (CLI). Otherwise only an OWNER or ADMIN of the same
    firm may create users, and only an OWNER may create another OWNER. ``password`` None
    leaves the account unusable until a set-password link is used (see :func:`add_user`).
    """
    role = _check_role(role)
    if actor is not None:
        _require_admin_of(actor, tenant_id)
        if role is Role.OWNER and not allowed(actor, Permission.MANAGE_OWNERS):
            raise Forbidden("only an owner may make someone an owner")
    _tenant_row(session, tenant_id)
    email = normalise_email(email)
    password_hash = security.hash_password(_check_password(password)) if password is not None else _unusable_password_hash()
    full_name = _check_full_name(full_name)
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict("a user with this email already exists", field="email")
    user = User(tenant_id=tenant_id, email=email, full_name=full_name, role=role, password_hash=password_hash)
    session.add(user)
    session.flush()
    audit.record(
        session=session,
        tenant_id=tenant_id,
        actor=actor,
        action="user.created",
        object_type="user",
        object_id=user.id,
        detail={"email": email, "role": role.value, "with_password": password is not None},
    )
    return _user_public(user)


def add_user(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    email: str,
    role: Role,
    full_name: str = "",
    password: str | None = None,
) -> UserCreated:
    """An admin adds a user with a password, or without one and gets a one-time set-password link.

    The link's token is in the result only: it is stored hashed and shown this once.
    """
    user = create_user(
        session=session, tenant_id=tenant_id, email=email, password=password, role=role, full_name=full_name, actor=actor
    )
    link = None
    if password is None:
        row = get_owned(session, User, tenant_id, user.id, what="user")
        link = _new_password_link(session, row, actor)
    return UserCreated(user=user, password_link=link)


def _extension_numbers(session: Session, tenant_id: int, user_ids: list[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.exec(tenant_select(SipExtension, tenant_id).where(SipExtension.user_id.in_(user_ids))).all()  # type: ignore[attr-defined]
    return {row.user_id: row.extension for row in rows}


def list_users(*, session: Session, tenant_id: int) -> list[UserPublic]:
    """Every user of the firm, oldest first, with their extension number and last sign-in."""
    rows = session.exec(tenant_select(User, tenant_id).order_by(User.id)).all()
    numbers = _extension_numbers(session, tenant_id, [u.id for u in rows])
    return [_user_public(u, numbers.get(u.id)) for u in rows]


def get_user(*, session: Session, tenant_id: int, user_id: int) -> UserPublic:
    """One user of the firm, or :class:`NotFound` (another firm's user included)."""
    user = get_owned(session, User, tenant_id, user_id, what="user")
    return _user_public(user, _extension_numbers(session, tenant_id, [user.id]).get(user.id))


def update_user(
    *,
    session: Session,
    tenant_id: int,
    user_id: int,
    actor: Principal | None,
    role: Role | str | None = None,
    active: bool | None = None,
    full_name: str | None = None,
) -> UserPublic:
    """Change a user's role, active flag or name (None leaves a field as it is).

    ``actor`` None is the operator. Disabling a user ends every session of theirs at once.
    Refused: by anyone but an OWNER or ADMIN (:class:`Forbidden`); an ADMIN changing an
    OWNER or making one (:class:`Forbidden`); changing one's own role or disabling oneself,
    and demoting or disabling the firm's last active OWNER (:class:`Conflict`).
    """
    if actor is not None:
        _require_admin_of(actor, tenant_id)
    user = get_owned(session, User, tenant_id, user_id, what="user")
    new_role = _check_role(role) if role is not None else user.role
    new_name = _check_full_name(full_name) if full_name is not None else user.full_name
    new_active = user.active if active is None else bool(active)
    changes: dict[str, list[object]] = {}
    if new_role is not user.role:
        changes["role"] = [user.role.value, new_role.value]
    if new_active != user.active:
        changes["active"] = [user.active, new_active]
    if new_name != user.full_name:
        changes["full_name"] = [user.full_name, new_name]
    if not changes:
        return get_user(session=session, tenant_id=tenant_id, user_id=user_id)
    if actor is not None:
        _require_may_touch(actor, user)
        if new_role is Role.OWNER and not allowed(actor, Permission.MANAGE_OWNERS):
            raise Forbidden("only an owner may make someone an owner")
        if actor.user_id == user.id and "role" in changes:
            raise Conflict("you cannot change your own role", field="role")
        if actor.user_id == user.id and not new_active:
            raise Conflict("you cannot disable your own account", field="active")
    if user.role is Role.OWNER and user.active and (new_role is not Role.OWNER or not new_active):
        _lock_tenant(session, tenant_id)
        if not _has_other_active_owner(session, tenant_id, user.id):
            what = "demoted" if "role" in changes else "disabled"
            raise Conflict(f"the firm's last active owner cannot be {what}", field="role" if what == "demoted" else "active")
    user.role, user.active, user.full_name = new_role, new_active, new_name
    session.add(user)
    session.flush()
    if not new_active:
        revoke_user_tokens(session=session, tenant_id=tenant_id, user_id=user.id)
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="user.updated", object_type="user", object_id=user.id,
        detail=changes,
    )
    return get_user(session=session, tenant_id=tenant_id, user_id=user_id)


def set_user_active(
    *, session: Session, tenant_id: int, user_id: int, active: bool, actor: Principal | None = None
) -> UserPublic:
    """Enable or disable a user (the rules of :func:`update_user`); a disabled user can neither sign in nor use a token."""
    return update_user(session=session, tenant_id=tenant_id, user_id=user_id, actor=actor, active=active)


# --------------------------------------------------------------------------- passwords


def _new_password_link(session: Session, user: User, actor: Principal | None) -> PasswordLinkPublic:
    _drop_password_links(session, user)
    token = security.new_link_token()
    expires_at = utcnow() + PASSWORD_LINK_TTL
    session.add(
        PasswordSetLink(
            tenant_id=user.tenant_id,
            user_id=user.id,
            token_hash=security.hash_token(token),
            created_by_user_id=actor.user_id if actor is not None else None,
            expires_at=expires_at,
        )
    )
    session.flush()
    audit.record(
        session=session, tenant_id=user.tenant_id, actor=actor, action="user.password_link_issued", object_type="user",
        object_id=user.id, detail={"expires_at": expires_at.isoformat()},
    )
    return PasswordLinkPublic(user_id=user.id, token=token, expires_at=expires_at)


def _drop_password_links(session: Session, user: User) -> None:
    # A new password or a new link makes every older link of the user worthless.
    for link in session.exec(tenant_select(PasswordSetLink, user.tenant_id).where(PasswordSetLink.user_id == user.id)).all():
        session.delete(link)
    session.flush()


def reset_password(
    *, session: Session, tenant_id: int, actor: Principal, user_id: int, password: str | None = None
) -> PasswordLinkPublic | None:
    """An admin gives a user a new password, or (``password`` None) a one-time set-password link.

    Either way the old password stops working and every session of the user ends. An
    ADMIN may not reset an OWNER's password; nobody resets their own here (they change
    it with their current one, :func:`change_own_password`).
    """
    _require_admin_of(actor, tenant_id)
    user = get_owned(session, User, tenant_id, user_id, what="user")
    _require_may_touch(actor, user)
    if user.id == actor.user_id:
        raise Conflict("change your own password from your account, with your current password", field="user_id")
    if password is not None:
        user.password_hash = security.hash_password(_check_password(password))
        _drop_password_links(session, user)
        link = None
    else:
        user.password_hash = _unusable_password_hash()
        link = _new_password_link(session, user, actor)
    session.add(user)
    session.flush()
    revoked = revoke_user_tokens(session=session, tenant_id=tenant_id, user_id=user.id)
    audit.record(
        session=session, tenant_id=tenant_id, actor=actor, action="user.password_reset", object_type="user",
        object_id=user.id, detail={"method": "password" if link is None else "link", "sessions_ended": revoked},
    )
    return link


def _usable_link(session: Session, token: str | None) -> tuple[PasswordSetLink, User]:
    row = None
    if token and token.startswith(security.LINK_TOKEN_PREFIX) and len(token) <= 200:
        # The hash names the link across firms; the row then says whose it is.
        row = session.exec(select(PasswordSetLink).where(PasswordSetLink.token_hash == security.hash_token(token))).first()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise Invalid("token", LINK_INVALID_MESSAGE)
    user = session.exec(tenant_select(User, row.tenant_id).where(User.id == row.user_id)).first()
    if user is None or not user.active:
        raise Invalid("token", LINK_INVALID_MESSAGE)
    return row, user


def password_link_email(*, session: Session, token: str) -> str:
    """The email of the account a set-password link is for, or :class:`Invalid` (field ``token``)."""
    return _usable_link(session, token)[1].email


def set_password_with_link(*, session: Session, token: str, password: str) -> str:
    """Set the password of the link's user; the link works once. Returns the user's email.

    Every session of the user ends (a reset usually means the old password was lost or
    known to someone else).
    """
    row, user = _usable_link(session, token)
    password = _check_password(password)
    claimed = session.execute(
        sa.update(PasswordSetLink)
        .where(PasswordSetLink.id == row.id, PasswordSetLink.used_at.is_(None))  # type: ignore[union-attr]
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        # Another request used the link between the read and this write.
        raise Invalid("token", LINK_INVALID_MESSAGE)
    user.password_hash = security.hash_password(password)
    session.add(user)
    session.flush()
    revoke_user_tokens(session=session, tenant_id=user.tenant_id, user_id=user.id)
    audit.record(
        session=session, tenant_id=user.tenant_id, actor=_principal(user), action="user.password_set",
        object_type="user", object_id=user.id, detail={"via": "link"},
    )
    return user.email


def change_own_password(
    *,
    session: Session,
    principal: Principal,
    current_password: str,
    new_password: str,
    keep_session_id: int | None = None,
    source: str | None = None,
) -> int:
    """The signed-in user changes their password, proving the current one.

    Every other session of the user ends; ``keep_session_id`` (the session making the
    change, see :func:`session_id_of`) stays valid. A wrong current password counts against the sign-in throttle of the
    user's email, so a stolen session cannot guess it faster than the sign-in page.
    Returns how many sessions were ended.
    """
    user = get_owned(session, User, principal.tenant_id, principal.user_id, what="user")
    new_password = _check_password(new_password, "new_password")
    keys = _throttle_keys(user.email, source)
    wait = _claim_attempt(_engine_of(session), keys, utcnow())
    if wait > 0:
        raise TooManyAttempts(TOO_MANY_ATTEMPTS_MESSAGE, retry_after=max(1, math.ceil(wait)))
    if not current_password or len(current_password) > MAX_PASSWORD_LENGTH or not security.verify_password(
        current_password, user.password_hash
    ):
        raise Invalid("current_password", CURRENT_PASSWORD_WRONG_MESSAGE)
    _release_attempt(_engine_of(session), keys)
    if security.verify_password(new_password, user.password_hash):
        raise Invalid("new_password", "choose a password different from the current one")
    user.password_hash = security.hash_password(new_password)
    session.add(user)
    _drop_password_links(session, user)
    ended = revoke_user_tokens(session=session, tenant_id=user.tenant_id, user_id=user.id, keep_session_id=keep_session_id)
    audit.record(
        session=session, tenant_id=user.tenant_id, actor=principal, action="user.password_changed",
        object_type="user", object_id=user.id, detail={"sessions_ended": ended},
    )
    return ended


def sign_out_everywhere(*, session: Session, principal: Principal) -> int:
    """End every session of the signed-in user, this one included; returns how many ended."""
    ended = revoke_user_tokens(session=session, tenant_id=principal.tenant_id, user_id=principal.user_id)
    audit.record(
        session=session, tenant_id=principal.tenant_id, actor=principal, action="user.signed_out_everywhere",
        object_type="user", object_id=principal.user_id, detail={"sessions_ended": ended},
    )
    return ended


# --------------------------------------------------------------------------- sign-in


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


# --------------------------------------------------------------------------- session tokens


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


def _token_row(session: Session, token: str | None) -> ApiToken | None:
    if not token or not token.startswith(security.TOKEN_PREFIX) or len(token) > 200:
        return None
    # The hash names the token across tenants; the row then says whose it is.
    return session.exec(select(ApiToken).where(ApiToken.token_hash == security.hash_token(token))).first()


def principal_for_token(*, session: Session, token: str) -> Principal:
    """Who ``token`` belongs to, or :class:`AuthenticationFailed` when unknown, expired,
    revoked, idle too long or its user is disabled. A use counts as activity."""
    row = _token_row(session, token)
    user = session.exec(tenant_select(User, row.tenant_id).where(User.id == row.user_id)).first() if row else None
    check = _check_session(session, row, user, activity=True)
    if check.principal is None:
        raise AuthenticationFailed(TOKEN_INVALID_MESSAGE)
    return check.principal


def revoke_token(*, session: Session, token: str) -> None:
    """End the session of ``token``; an unknown token is already as good as revoked."""
    row = _token_row(session, token)
    if row is not None and not row.revoked:
        row.revoked = True
        session.add(row)
        session.flush()


# --------------------------------------------------------------------------- dashboard sessions

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


def _check_session(session: Session, row: ApiToken | None, user: User | None, *, activity: bool) -> SessionCheck:
    now = datetime.now(timezone.utc)
    if row is None:
        return SessionCheck(0, None, SessionEnd.EXPIRED)
    # A disabled user learns why, even when disabling also revoked the tokens.
    if user is None or not user.active:
        return SessionCheck(row.id, None, SessionEnd.DISABLED)
    if row.revoked or row.expires_at <= now:
        return SessionCheck(row.id, None, SessionEnd.EXPIRED)
    last_used = row.last_used_at or row.created_at
    if row.idle_timeout_seconds is not None and now - last_used > timedelta(seconds=row.idle_timeout_seconds):
        row.revoked = True
        session.add(row)
        session.flush()
        return SessionCheck(row.id, None, SessionEnd.IDLE)
    if activity and now - last_used >= LAST_USE_RESOLUTION:
        row.last_used_at = now
        session.add(row)
        session.flush()
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
