"""What an account's fields must look like: email, password, role, name."""

from __future__ import annotations

import re


from services.errors import Invalid
from services.models import Role, UserBase, UserCreate
from services.models.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from services.models.base import check_length, max_length, too_long
from services.names import clean_name

# A session token or a set-password link's token is never longer (security.new_token).
MAX_TOKEN_LENGTH = 200
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def normalise_email(raw: str | None, *, field: str = "email") -> str:
    """The lowercased address, or :class:`Invalid` when it is not one."""
    email = (raw or "").strip().lower()
    if not email:
        raise Invalid(field, "an email address is required")
    if len(email) > max_length(UserBase, "email") or not _EMAIL.match(email):
        raise Invalid(field, "not a valid email address")
    return email


def _check_password(password: str | None, field: str = "password") -> str:
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(field, f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(field, too_long(UserCreate, "password"))
    return password


def _check_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise Invalid("role", "role must be one of OWNER, ADMIN, MANAGER, AGENT") from None


def _check_full_name(full_name: str | None) -> str:
    return check_length(UserBase, "full_name", clean_name(full_name)) or ""
