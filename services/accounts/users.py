"""Users of a firm and the rules of managing them.

Only an OWNER or ADMIN manages users; an ADMIN never creates, changes or disables an
OWNER; nobody changes their own role or disables themselves; a firm always keeps one
active OWNER. Every change is written to the audit log in the same transaction, never
with a password or a link token in it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from services import audit, security
from services.accounts.sessions import revoke_user_tokens
from services.accounts.tenants import _lock_tenant, _tenant_row
from services.accounts.validation import _check_full_name, _check_password, _check_role, normalise_email
from services.authz import Permission, allowed
from services.errors import Conflict, Forbidden, NotFound
from services.models import (
    PasswordLinkPublic,
    PasswordSetLink,
    Principal,
    Role,
    SipExtension,
    User,
    UserCreated,
    UserPublic,
    utcnow,
)
from services.tenancy import get_owned, tenant_select


PASSWORD_LINK_TTL = timedelta(hours=72)


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
