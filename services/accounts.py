"""Tenants, users, logins and session tokens.

Logins are not tenant-scoped: an email names one person in one firm, so the email
finds the user and the user's row says which tenant the session belongs to. Every
other function here is scoped by the tenant it is given.
"""

from __future__ import annotations

import enum
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, select

from services import phones, security
from services.errors import AuthenticationFailed, Conflict, Forbidden, Invalid, NotFound
from services.models import ApiToken, Principal, Role, Tenant, TenantPublic, User, UserPublic
from services.tenancy import get_owned, tenant_select

MIN_PASSWORD_LENGTH = 8
# argon2 hashes whatever it is given; a cap keeps a huge body from costing seconds.
MAX_PASSWORD_LENGTH = 1024
LOGIN_FAILED_MESSAGE = "wrong email or password"
ACCOUNT_DISABLED_MESSAGE = "this account is disabled"
TOKEN_INVALID_MESSAGE = "the session has expired or is not valid; sign in again"

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


def _user_public(user: User) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, full_name=user.full_name, role=user.role, active=user.active)


def _principal(user: User) -> Principal:
    return Principal(user_id=user.id, tenant_id=user.tenant_id, role=user.role, email=user.email, full_name=user.full_name)


# --------------------------------------------------------------------------- tenants


def create_tenant(*, session: Session, name: str, region: str = "SA", timezone: str = "Asia/Riyadh") -> TenantPublic:
    """A new firm; its slug is derived from the name and made unique."""
    name = (name or "").strip()
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


def _check_password(password: str | None) -> str:
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid("password", f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid("password", f"a password is at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise Invalid("role", "role must be one of OWNER, ADMIN, MANAGER, AGENT") from None


def _require_admin_of(actor: Principal, tenant_id: int) -> None:
    if actor.tenant_id != tenant_id:
        raise NotFound("tenant not found")
    if not actor.is_admin:
        raise Forbidden("only an owner or an admin may manage users")


def create_user(
    *,
    session: Session,
    tenant_id: int,
    email: str,
    password: str,
    role: Role,
    full_name: str = "",
    actor: Principal | None = None,
) -> UserPublic:
    """A new user of the firm.

    ``actor`` None is the operator (CLI). Otherwise only an OWNER or ADMIN of the same
    firm may create users, and only an OWNER may create another OWNER.
    """
    role = _check_role(role)
    if actor is not None:
        _require_admin_of(actor, tenant_id)
        if role is Role.OWNER and actor.role is not Role.OWNER:
            raise Forbidden("only an owner may create another owner")
    _tenant_row(session, tenant_id)
    email = normalise_email(email)
    password = _check_password(password)
    full_name = (full_name or "").strip()
    if len(full_name) > 200:
        raise Invalid("full_name", "a name is at most 200 characters")
    if session.exec(select(User.id).where(User.email == email)).first() is not None:
        raise Conflict("a user with this email already exists", field="email")
    user = User(
        tenant_id=tenant_id,
        email=email,
        full_name=full_name,
        role=role,
        password_hash=security.hash_password(password),
    )
    session.add(user)
    session.flush()
    return _user_public(user)


def list_users(*, session: Session, tenant_id: int) -> list[UserPublic]:
    """Every user of the firm, oldest first."""
    rows = session.exec(tenant_select(User, tenant_id).order_by(User.id)).all()
    return [_user_public(u) for u in rows]


def get_user(*, session: Session, tenant_id: int, user_id: int) -> UserPublic:
    """One user of the firm, or :class:`NotFound` (another firm's user included)."""
    return _user_public(get_owned(session, User, tenant_id, user_id, what="user"))


def set_user_active(
    *, session: Session, tenant_id: int, user_id: int, active: bool, actor: Principal | None = None
) -> UserPublic:
    """Enable or disable a user; a disabled user can neither sign in nor use a token.

    Only an OWNER or ADMIN may do it, nobody may disable themselves, only an OWNER may
    disable an OWNER, and the last active OWNER stays active so the firm keeps an owner.
    """
    if actor is not None:
        _require_admin_of(actor, tenant_id)
    user = get_owned(session, User, tenant_id, user_id, what="user")
    if not active:
        if actor is not None and actor.user_id == user.id:
            raise Conflict("you cannot disable your own account", field="active")
        if user.role is Role.OWNER:
            if actor is not None and actor.role is not Role.OWNER:
                raise Forbidden("only an owner may disable an owner")
            other_owners = session.exec(
                tenant_select(User, tenant_id).where(User.role == Role.OWNER, User.active, User.id != user.id)
            ).first()
            if other_owners is None:
                raise Conflict("the last active owner cannot be disabled", field="active")
    user.active = bool(active)
    session.add(user)
    session.flush()
    return _user_public(user)


# --------------------------------------------------------------------------- login


def authenticate(*, session: Session, email: str, password: str) -> Principal:
    """The principal for these credentials, or :class:`AuthenticationFailed`.

    Unknown email, wrong password and a disabled account all give the same message and
    cost the same argon2 verification; only a caller who knows the password learns
    that the account is disabled. Callers slow repeated failures with :data:`login_throttle`.
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


@dataclass
class LoginThrottle:
    """Slows repeated login failures, per email and per source (in this process).

    After ``free_failures`` failures within ``window`` the next attempt must wait
    ``base_delay * 2**(failures - free_failures)`` seconds after the last failure, up to
    ``max_delay``. Callers check :meth:`login_delay_seconds` for each of
    :meth:`keys_for` before calling :func:`authenticate` and record the outcome.
    """

    free_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    base_delay: float = 1.0
    max_delay: float = 60.0
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000
    _failures: dict[str, deque[float]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @staticmethod
    def keys_for(email: str, source: str | None) -> list[str]:
        keys = [f"email:{(email or '').strip().lower()}"]
        if source:
            keys.append(f"source:{source}")
        return keys

    def _recent(self, key: str, now: float) -> deque[float] | None:
        stamps = self._failures.get(key)
        if stamps is None:
            return None
        horizon = now - self.window.total_seconds()
        while stamps and stamps[0] <= horizon:
            stamps.popleft()
        if not stamps:
            del self._failures[key]
            return None
        return stamps

    def login_delay_seconds(self, key: str) -> float:
        """Seconds ``key`` must still wait before its next attempt (0.0: go ahead)."""
        with self._lock:
            now = self.clock()
            stamps = self._recent(key, now)
            if stamps is None or len(stamps) < self.free_failures:
                return 0.0
            delay = min(self.max_delay, self.base_delay * 2 ** (len(stamps) - self.free_failures))
            return max(0.0, stamps[-1] + delay - now)

    def record_failure(self, key: str) -> None:
        with self._lock:
            now = self.clock()
            if key not in self._failures and len(self._failures) >= self.max_keys:
                self._prune(now)
            stamps = self._recent(key, now)
            if stamps is None:
                stamps = self._failures[key] = deque()
            stamps.append(now)

    def record_success(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        # Under a spray of distinct keys, forget the oldest rather than grow without bound.
        while len(self._failures) >= self.max_keys:
            oldest = min(self._failures, key=lambda k: self._failures[k][-1])
            del self._failures[oldest]


login_throttle = LoginThrottle()


# --------------------------------------------------------------------------- session tokens


def issue_token(*, session: Session, principal: Principal, ttl: timedelta = security.DEFAULT_TOKEN_TTL) -> str:
    """A new bearer token for ``principal``; only its hash is stored, so this is the one chance to read it."""
    if ttl <= timedelta(0):
        raise Invalid("ttl", "a token must live for a positive time")
    user = get_owned(session, User, principal.tenant_id, principal.user_id, what="user")
    if not user.active:
        raise AuthenticationFailed(ACCOUNT_DISABLED_MESSAGE)
    token = security.new_token()
    session.add(
        ApiToken(
            tenant_id=user.tenant_id,
            user_id=user.id,
            token_hash=security.hash_token(token),
            expires_at=security.token_expiry(ttl),
            last_used_at=datetime.now(timezone.utc),
        )
    )
    session.flush()
    return token


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
        .join(User, (User.id == ApiToken.user_id) & (User.tenant_id == ApiToken.tenant_id))
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


def revoke_user_tokens(*, session: Session, tenant_id: int, user_id: int) -> int:
    """End every session and token of the user (disabling, a password reset, "sign out
    everywhere"); their open dashboard tabs are signed out at their next check. Returns
    how many were still live."""
    rows = session.exec(tenant_select(ApiToken, tenant_id).where(ApiToken.user_id == user_id, ApiToken.revoked == False)).all()  # noqa: E712
    for row in rows:
        row.revoked = True
        session.add(row)
    session.flush()
    return len(rows)
