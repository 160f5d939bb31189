"""What an account's fields must look like: email, password, role, name."""

from __future__ import annotations

import re


from services.errors import Invalid
from services.models import Role
from services.names import clean_name


MIN_PASSWORD_LENGTH = 8
# argon2 hashes whatever it is given; a cap keeps a huge body from costing seconds.
MAX_PASSWORD_LENGTH = 1024
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")


def normalise_email(raw: str | None, *, field: str = "email") -> str:
    """The lowercased address, or :class:`Invalid` when it is not one."""
    email = (raw or "").strip().lower()
    if not email:
        raise Invalid(field, "an email address is required")
    if len(email) > 254 or not _EMAIL.match(email):
        raise Invalid(field, "not a valid email address")
    return email


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
