"""Tenants, users, sign-in and session tokens, and the rules of managing accounts.

One module per seam; ``from services import accounts; accounts.sign_in(...)`` keeps
working for every public name:

- :mod:`~services.accounts.validation`: what an email, password, role and name must be;
- :mod:`~services.accounts.tenants`: firms;
- :mod:`~services.accounts.sessions`: tokens and the dashboard's sessions;
- :mod:`~services.accounts.users`: users and who may change whose account;
- :mod:`~services.accounts.login`: signing in behind the shared throttle;
- :mod:`~services.accounts.passwords`: set-password links, resets, one's own change.
"""

from __future__ import annotations

from services.accounts.validation import MAX_PASSWORD_LENGTH, MAX_TOKEN_LENGTH, MIN_PASSWORD_LENGTH, normalise_email
from services.accounts.tenants import create_tenant, get_tenant
from services.accounts.sessions import (
    ACCOUNT_DISABLED_MESSAGE,
    LAST_USE_RESOLUTION,
    SESSION_IDLE_TIMEOUT,
    TOKEN_INVALID_MESSAGE,
    SessionCheck,
    SessionEnd,
    check_session,
    could_be_token,
    ended_sessions,
    issue_token,
    principal_for_token,
    revoke_session,
    revoke_token,
    revoke_user_tokens,
    session_id_of,
    start_dashboard_session,
)
from services.accounts.users import (
    PASSWORD_LINK_TTL,
    add_user,
    create_user,
    get_user,
    list_users,
    set_user_active,
    update_user,
)
from services.accounts.login import (
    EMAIL_THROTTLE,
    LOGIN_FAILED_MESSAGE,
    SOURCE_THROTTLE,
    TOO_MANY_ATTEMPTS_MESSAGE,
    ThrottlePolicy,
    authenticate,
    sign_in,
)
from services.accounts.passwords import (
    CURRENT_PASSWORD_WRONG_MESSAGE,
    LINK_INVALID_MESSAGE,
    change_own_password,
    password_link_email,
    reset_password,
    set_password_with_link,
    sign_out_everywhere,
)

__all__ = [
    "ACCOUNT_DISABLED_MESSAGE",
    "CURRENT_PASSWORD_WRONG_MESSAGE",
    "EMAIL_THROTTLE",
    "LAST_USE_RESOLUTION",
    "LINK_INVALID_MESSAGE",
    "LOGIN_FAILED_MESSAGE",
    "MAX_PASSWORD_LENGTH",
    "MAX_TOKEN_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PASSWORD_LINK_TTL",
    "SESSION_IDLE_TIMEOUT",
    "SOURCE_THROTTLE",
    "SessionCheck",
    "SessionEnd",
    "TOKEN_INVALID_MESSAGE",
    "TOO_MANY_ATTEMPTS_MESSAGE",
    "ThrottlePolicy",
    "add_user",
    "authenticate",
    "change_own_password",
    "check_session",
    "could_be_token",
    "ended_sessions",
    "create_tenant",
    "create_user",
    "get_tenant",
    "get_user",
    "issue_token",
    "list_users",
    "normalise_email",
    "password_link_email",
    "principal_for_token",
    "reset_password",
    "revoke_session",
    "revoke_token",
    "revoke_user_tokens",
    "session_id_of",
    "set_password_with_link",
    "set_user_active",
    "sign_in",
    "sign_out_everywhere",
    "start_dashboard_session",
    "update_user",
]
