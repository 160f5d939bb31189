"""Passwords: set-password links, admin resets, one's own change, signing out everywhere."""

from __future__ import annotations

import math

import sqlalchemy as sa
from sqlmodel import Session, select

from services import audit, security
from services.accounts.login import (
    TOO_MANY_ATTEMPTS_MESSAGE,
    _claim_attempt,
    _engine_of,
    _release_attempt,
    _throttle_keys,
)
from services.accounts.sessions import _principal, revoke_user_tokens
from services.accounts.users import (
    _drop_password_links,
    _new_password_link,
    _require_admin_of,
    _require_may_touch,
    _unusable_password_hash,
)
from services.accounts.validation import MAX_PASSWORD_LENGTH, MAX_TOKEN_LENGTH, _check_password
from services.errors import Conflict, Invalid, TooManyAttempts
from services.models import PasswordLinkPublic, PasswordSetLink, Principal, User, utcnow
from services.tenancy import get_owned, tenant_select


LINK_INVALID_MESSAGE = "this link is not valid: it has expired, was already used or was replaced"
CURRENT_PASSWORD_WRONG_MESSAGE = "the current password is not right"


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
    if token and token.startswith(security.LINK_TOKEN_PREFIX) and len(token) <= MAX_TOKEN_LENGTH:
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
