"""The call-record part of a firm's PBX settings: which source (none, the PBX lab, the
UCM6301), the UCM's API URL, user and password (stored encrypted like SIP passwords,
write-only), the port this side listens on for the UCM's real-time output, and the
"test connection" that logs in and reads one page of records.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from sqlmodel import Session

from services import accounts, security
from services.authz import Permission, require
from services.errors import Invalid, NotFound
from services.models import CdrConnectionResult, CdrSettingsIn, PbxSettings, Principal, utcnow
from services.pbx.records import CdrSourceError
from services.pbx.sources import CDR_SOURCES, source_for
from services.pbx.ucm import UCM_API_PASSWORD_PURPOSE
from services.tenancy import tenant_select

MAX_API_PASSWORD = 128
_API_USER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def _is_loopback(host: str) -> bool:
    from services.call_center.extensions import is_loopback_host

    return is_loopback_host(host)


def _clean_api_url(value: str) -> str:
    """``https://host[:port]`` (a trailing ``/api`` is dropped: the adapter adds it)."""
    from services.call_center.extensions import _validate_host

    url = value.strip().rstrip("/")
    if not url:
        return ""
    example = "the UCM API URL is https://host:port, e.g. https://192.168.1.10:8089"
    if len(url) > 512:
        raise Invalid("api_url", "the UCM API URL is at most 512 characters")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise Invalid("api_url", example) from None
    if (parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.query
            or parts.fragment or parts.path not in ("", "/api")):
        raise Invalid("api_url", example)
    host = _validate_host(parts.hostname, "api_url")
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}" + (f":{port}" if port else "")


def apply_cdr_settings(settings: PbxSettings, data: CdrSettingsIn) -> None:
    """Validate ``data`` and write it into ``settings`` (nothing is written when refused)."""
    source = (data.cdr_source or "").strip().lower()
    if source not in CDR_SOURCES:
        raise Invalid("cdr_source", "the call-record source is none, lab or ucm")
    if source == "lab" and not _is_loopback(settings.host):
        raise Invalid("cdr_source", "the PBX lab is a source only for a PBX on this machine")
    api_url = _clean_api_url(data.api_url or "")
    api_user = (data.api_user or "").strip()
    if api_user and not _API_USER.match(api_user):
        raise Invalid("api_user", "the API user is 1 to 64 letters, digits or . _ @ -")
    password = data.api_password
    if password is not None and len(password) > MAX_API_PASSWORD:
        raise Invalid("api_password", f"the API password is at most {MAX_API_PASSWORD} characters")
    port = data.realtime_port
    if port is not None and port != 0 and not 1024 <= port <= 65535:
        raise Invalid("realtime_port", "the real-time output port is between 1024 and 65535")
    if source == "ucm":
        if not api_url:
            raise Invalid("api_url", "the UCM API URL is required for UCM call records")
        if not api_user:
            raise Invalid("api_user", "the API user is required for UCM call records")
        if not (password or (password is None and settings.api_password_encrypted)):
            raise Invalid("api_password", "the API password is required for UCM call records")
    settings.cdr_source = source
    settings.api_url = api_url
    settings.api_user = api_user
    if password is not None:
        settings.api_password_encrypted = (
            security.encrypt_secret(password, purpose=UCM_API_PASSWORD_PURPOSE) if password else None
        )
    if port is not None:
        settings.realtime_port = port or None


def update_cdr_settings(*, session: Session, tenant_id: int, actor: Principal, data: CdrSettingsIn) -> PbxSettings:
    """Set where the firm's call records come from (OWNER/ADMIN); the PBX settings must exist."""
    require(actor, Permission.MANAGE_PBX, tenant_id=tenant_id)
    settings = session.exec(tenant_select(PbxSettings, tenant_id)).first()
    if settings is None:
        raise NotFound("the PBX settings have not been set yet")
    apply_cdr_settings(settings, data)
    settings.updated_at = utcnow()
    session.flush()
    return settings


def test_cdr_connection(*, session: Session, tenant_id: int, actor: Principal, lab_dir: Path | None = None
                        ) -> CdrConnectionResult:
    """Log in to the firm's call-record source and read one page: the result as a sentence.
    Blocking (network); call it from a worker thread in an event loop."""
    require(actor, Permission.MANAGE_PBX, tenant_id=tenant_id)
    settings = session.exec(tenant_select(PbxSettings, tenant_id)).first()
    if settings is None:
        raise NotFound("the PBX settings have not been set yet")
    timezone = accounts.get_tenant(session=session, tenant_id=tenant_id).timezone
    try:
        source = source_for(settings, lab_dir=lab_dir, timezone=timezone)
        if source is None:
            return CdrConnectionResult(ok=False, code="not_configured",
                                       message="No call-record source is set: only the softphones log calls.")
        try:
            message = source.test_connection()  # type: ignore[attr-defined]
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
    except CdrSourceError as exc:
        return CdrConnectionResult(ok=False, code=exc.code, message=exc.message)
    return CdrConnectionResult(ok=True, code="ok", message=message)


__all__ = ["apply_cdr_settings", "test_cdr_connection", "update_cdr_settings"]
