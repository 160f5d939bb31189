"""Domain errors raised by services.

The API maps them to HTTP codes in one place (``watheeq_ui/api/errors.py``) and the UI
to messages in one place; services never know about either.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    """The object does not exist in this tenant (another tenant's object included)."""


class Forbidden(DomainError):
    """The actor's role may not do this."""


class Conflict(DomainError):
    """The change would break a uniqueness or state rule."""


class Invalid(DomainError):
    """Bad input: ``field`` names the input, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class AuthenticationFailed(DomainError):
    """Wrong credentials, a disabled user or an invalid/expired token (never says which)."""


class TooManyAttempts(DomainError):
    """Too many sign-in attempts for this email or source; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
