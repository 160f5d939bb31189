"""SIP extensions of a firm's users and the firm's PBX connection settings.

An extension's SIP password is a secret: it is stored AES-GCM encrypted, accepted on
write, and handed back only to its own user's softphone by :func:`get_extension_for_user`.
The same holds for the TURN credential of the PBX settings.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from services import accounts, security
from services.key_rotation import SIP_PASSWORD_PURPOSE, TURN_CREDENTIAL_PURPOSE
from services.authz import Permission, require
from services.errors import Conflict, Invalid, NotFound
from services.models import (
    CdrSettingsIn,
    ExtensionAssign,
    ExtensionPublic,
    PbxSettings,
    PbxSettingsIn,
    PbxSettingsPublic,
    Principal,
    SipExtension,
    SoftphoneConfig,
    User,
    utcnow,
)
from services.models.base import max_length
from services.names import clean_name
from services.tenancy import get_owned, owned_by, same_tenant, tenant_select

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128

_EXTENSION = re.compile(r"^\d{2,10}$")
# A PBX on this machine: the only place a browser may use unencrypted ws:// (from an
# http://localhost page), and the dev PBX's home (dev/kamailio).
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
TRANSPORTS = ("ws", "wss")
# Each firm on the dev PBX is its own SIP domain, so one firm's 1001 is not another's.
DEV_PBX_DOMAIN_SUFFIX = "pbx.localhost"
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_ICE_SCHEMES = ("stun:", "turn:", "turns:")


# --------------------------------------------------------------------------- PBX settings


def _validate_host(host: str, field: str = "host") -> str:
    host = host.strip()
    if not host:
        raise Invalid(field, "the PBX host is required")
    if "://" in host or "/" in host:
        raise Invalid(field, "give the host name or IP address only, without scheme or path")
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if len(host) > max_length(PbxSettings, "host") or not all(_HOST_LABEL.match(label) for label in host.rstrip(".").split(".")):
        raise Invalid(field, "not a valid host name or IP address")
    return host.rstrip(".").lower()


def _validate_ice_servers(servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(servers, list):
        raise Invalid("ice_servers", "a list of ICE servers is expected")
    cleaned: list[dict[str, Any]] = []
    for i, server in enumerate(servers):
        where = f"ice_servers[{i}]"
        if not isinstance(server, dict):
            raise Invalid(where, "each ICE server is an object with 'urls'")
        unknown = set(server) - {"urls", "username", "credential"}
        if unknown:
            raise Invalid(f"{where}.{sorted(unknown)[0]}", "unknown ICE server field")
        if "credential" in server:
            # Storing it here would keep a secret in clear text in a JSON column.
            raise Invalid(f"{where}.credential", "pass the TURN credential separately; it is stored encrypted")
        urls = server.get("urls")
        url_list = [urls] if isinstance(urls, str) else urls
        if not isinstance(url_list, list) or not url_list:
            raise Invalid(f"{where}.urls", "one URL or a list of URLs is required")
        for url in url_list:
            if not isinstance(url, str) or not url.startswith(_ICE_SCHEMES) or len(url) <= len("turn:"):
                raise Invalid(f"{where}.urls", "each URL starts with stun:, turn: or turns:")
        entry: dict[str, Any] = {"urls": urls}
        username = server.get("username")
        if username is not None:
            if not isinstance(username, str) or len(username) > 256:
                raise Invalid(f"{where}.username", "the username is text of at most 256 characters")
            entry["username"] = username
        cleaned.append(entry)
    return cleaned


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this machine (127.0.0.0/8, ::1 or localhost)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_did(value: str | None) -> str:
    """The firm's DID in E.164 (``+`` and 8 to 15 digits), or "" for none.

    Spaces, dashes and brackets as people write numbers are dropped; a leading ``00`` is the
    international prefix. Anything else is refused: the PBX matches the trunk's INVITE on it.
    """
    text = re.sub(r"[\s\-().]", "", value or "")
    if not text:
        return ""
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+[1-9][0-9]{7,14}", text):
        raise Invalid("did", "the DID is an international number: + then 8 to 15 digits, e.g. +966110000000")
    return text


def dev_pbx_domain(slug: str) -> str:
    """The SIP domain a firm gets on the loopback dev PBX: ``<slug>.pbx.localhost``."""
    label = re.sub(r"[^a-z0-9-]+", "-", slug.lower()).strip("-")[:63].strip("-") or "firm"
    return f"{label}.{DEV_PBX_DOMAIN_SUFFIX}"


def _wss_url(settings: PbxSettings) -> str:
    host = settings.host
    if ":" in host:  # an IPv6 literal needs brackets in a URL
        host = f"[{host}]"
    scheme = "ws" if settings.transport == "ws" else "wss"
    return f"{scheme}://{host}:{settings.wss_port}{settings.wss_path}"


def _sip_domain(settings: PbxSettings) -> str:
    return settings.sip_domain or settings.host


def _pbx_public(settings: PbxSettings) -> PbxSettingsPublic:
    return PbxSettingsPublic(
        host=settings.host,
        transport=settings.transport,
        wss_port=settings.wss_port,
        wss_path=settings.wss_path,
        sip_domain=settings.sip_domain,
        did=settings.did,
        ice_servers=[dict(s) for s in settings.ice_servers],
        wss_url=_wss_url(settings),
        cdr_source=settings.cdr_source or "",
        api_url=settings.api_url or "",
        api_user=settings.api_user or "",
        api_password_set=bool(settings.api_password_encrypted),
        realtime_port=settings.realtime_port,
    )


def _pbx_row(session: Session, tenant_id: int) -> PbxSettings | None:
    return session.exec(tenant_select(PbxSettings, tenant_id)).first()


def get_pbx_settings(*, session: Session, tenant_id: int) -> PbxSettingsPublic | None:
    """The firm's PBX connection settings (without the TURN credential), or None if unset."""
    settings = _pbx_row(session, tenant_id)
    return _pbx_public(settings) if settings else None


def update_pbx_settings(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    data: PbxSettingsIn,
    turn_credential: str | None = None,
    api_password: str | None = None,
) -> PbxSettingsPublic:
    """Create or replace the firm's PBX settings (OWNER/ADMIN).

    ``turn_credential``: None keeps the stored one, "" removes it, any other text
    replaces it (stored encrypted, merged into TURN entries only for softphones).
    The call-record fields (services.pbx.settings) are kept when None; ``api_password``
    (the UCM API's) follows the TURN credential's rule and is never returned.
    """
    require(actor, Permission.MANAGE_PBX, tenant_id=tenant_id)
    host = _validate_host(data.host)
    transport = (data.transport or "").strip().lower()
    if transport not in TRANSPORTS:
        raise Invalid("transport", "the transport is ws or wss")
    if transport == "ws" and not is_loopback_host(host):
        # Plain ws:// would carry the SIP password digest and call set-up in clear across
        # a network, and browsers refuse it from an https page anyway.
        raise Invalid("transport", "ws (unencrypted) is only for a PBX on this machine (127.0.0.1, ::1, localhost); use wss")
    if not 1 <= data.wss_port <= 65535:
        raise Invalid("wss_port", "the port is between 1 and 65535")
    path = (data.wss_path or "").strip()
    if not path.startswith("/") or len(path) > max_length(PbxSettings, "wss_path") or any(c.isspace() for c in path):
        raise Invalid("wss_path", "the WebSocket path starts with '/' and has no spaces")
    domain = (data.sip_domain or "").strip()
    if domain:
        domain = _validate_host(domain, "sip_domain")
    elif is_loopback_host(host):
        # Firms sharing the loopback PBX would otherwise share one domain and so their numbers.
        domain = dev_pbx_domain(accounts.get_tenant(session=session, tenant_id=tenant_id).slug)
    did = normalize_did(data.did)
    ice_servers = _validate_ice_servers(data.ice_servers)
    if turn_credential is not None and len(turn_credential) > 256:
        raise Invalid("turn_credential", "the TURN credential is at most 256 characters")

    settings = _pbx_row(session, tenant_id)
    if settings is None:
        settings = PbxSettings(tenant_id=tenant_id, host=host)
        session.add(settings)
    settings.host = host
    settings.transport = transport
    settings.wss_port = data.wss_port
    settings.wss_path = path
    settings.sip_domain = domain
    settings.did = did
    settings.ice_servers = ice_servers
    cdr_given = (data.cdr_source, data.api_url, data.api_user, data.realtime_port, api_password)
    if any(value is not None for value in cdr_given):
        from services.pbx.settings import apply_cdr_settings

        apply_cdr_settings(settings, CdrSettingsIn(
            cdr_source=settings.cdr_source if data.cdr_source is None else data.cdr_source,
            api_url=settings.api_url if data.api_url is None else data.api_url,
            api_user=settings.api_user if data.api_user is None else data.api_user,
            api_password=api_password,
            realtime_port=data.realtime_port,
        ))
    if turn_credential is not None:
        settings.turn_credential_encrypted = (
            security.encrypt_secret(turn_credential, purpose=TURN_CREDENTIAL_PURPOSE) if turn_credential else None
        )
    settings.updated_at = utcnow()
    session.flush()
    return _pbx_public(settings)


# --------------------------------------------------------------------------- extensions


def _extension_public(ext: SipExtension, user: User, domain: str | None) -> ExtensionPublic:
    return ExtensionPublic(
        id=ext.id,
        user_id=ext.user_id,
        user_email=user.email,
        user_full_name=user.full_name,
        extension=ext.extension,
        display_name=ext.display_name,
        sip_uri=f"sip:{ext.extension}@{domain}" if domain else None,
    )


def _domain_of(session: Session, tenant_id: int) -> str | None:
    settings = _pbx_row(session, tenant_id)
    return _sip_domain(settings) if settings else None


def get_extensions(*, session: Session, tenant_id: int, actor: Principal) -> list[ExtensionPublic]:
    """Every extension of the firm with its user, ordered by number (OWNER/ADMIN/MANAGER)."""
    require(actor, Permission.LIST_EXTENSIONS, tenant_id=tenant_id)
    rows = session.exec(
        select(SipExtension, User)
        .join(User, sa.and_(User.id == SipExtension.user_id, same_tenant(User, SipExtension)))
        .where(owned_by(SipExtension, tenant_id))
        .order_by(SipExtension.extension)
    ).all()
    domain = _domain_of(session, tenant_id)
    return [_extension_public(ext, user, domain) for ext, user in rows]


def assign_extension(*, session: Session, tenant_id: int, actor: Principal, data: ExtensionAssign) -> ExtensionPublic:
    """Give a user their extension, or change it (OWNER/ADMIN). One extension per user.

    The number is unique in the firm (:class:`Conflict` on ``extension``). A password is
    required for a new extension; on a change, omitting it keeps the stored one.
    """
    require(actor, Permission.MANAGE_EXTENSIONS, tenant_id=tenant_id)
    number = (data.extension or "").strip()
    if not _EXTENSION.match(number):
        raise Invalid("extension", "an extension is 2 to 10 digits")
    # Lengths were checked when ``data`` was built (SipExtensionBase declares them).
    display_name = clean_name(data.display_name)
    password = data.password
    if password is not None and not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Invalid("password", f"the SIP password is {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters")

    user = get_owned(session, User, tenant_id, data.user_id, what="user")
    ext = session.exec(tenant_select(SipExtension, tenant_id).where(SipExtension.user_id == user.id)).first()
    if ext is None and password is None:
        raise Invalid("password", "a SIP password is required for a new extension")

    taken = session.exec(
        tenant_select(SipExtension, tenant_id).where(SipExtension.extension == number)
    ).first()
    if taken is not None and (ext is None or taken.id != ext.id):
        raise Conflict(f"extension {number} is already assigned", field="extension")

    now = utcnow()
    if ext is None:
        ext = SipExtension(tenant_id=tenant_id, user_id=user.id, extension=number, password_encrypted="")
        session.add(ext)
    ext.extension = number
    ext.display_name = display_name or clean_name(user.full_name)[:100]
    if password is not None:
        ext.password_encrypted = security.encrypt_secret(password, purpose=SIP_PASSWORD_PURPOSE)
    ext.updated_at = now
    try:
        # A savepoint, so a concurrent assignment of the same number fails this call only.
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError:
        raise Conflict(f"extension {number} is already assigned", field="extension") from None
    return _extension_public(ext, user, _domain_of(session, tenant_id))


def delete_extension(*, session: Session, tenant_id: int, actor: Principal, extension_id: int) -> None:
    """Remove an extension (OWNER/ADMIN); its calls keep the number they were made on."""
    require(actor, Permission.MANAGE_EXTENSIONS, tenant_id=tenant_id)
    ext = get_owned(session, SipExtension, tenant_id, extension_id, what="extension")
    session.delete(ext)
    session.flush()


def get_extension_for_user(*, session: Session, tenant_id: int, user_id: int) -> SoftphoneConfig:
    """What ``user_id``'s own softphone needs to register, password included.

    Call it only for the authenticated user themself: the result carries their secret.
    :class:`NotFound` when the user has no extension, :class:`Conflict` when the firm
    has no PBX settings yet.
    """
    ext = session.exec(tenant_select(SipExtension, tenant_id).where(SipExtension.user_id == user_id)).first()
    if ext is None:
        raise NotFound("you have no SIP extension yet; ask an administrator to assign one")
    settings = _pbx_row(session, tenant_id)
    if settings is None:
        raise Conflict("the PBX is not configured for this firm yet", field="pbx_settings")
    turn_credential = (
        security.decrypt_secret(settings.turn_credential_encrypted, purpose=TURN_CREDENTIAL_PURPOSE)
        if settings.turn_credential_encrypted
        else None
    )
    ice_servers: list[dict[str, Any]] = []
    for server in settings.ice_servers:
        entry = dict(server)
        urls = [entry["urls"]] if isinstance(entry["urls"], str) else entry["urls"]
        if turn_credential and any(u.startswith(("turn:", "turns:")) for u in urls):
            entry["credential"] = turn_credential
        ice_servers.append(entry)
    domain = _sip_domain(settings)
    return SoftphoneConfig(
        extension_id=ext.id,
        extension=ext.extension,
        display_name=ext.display_name,
        wss_url=_wss_url(settings),
        sip_uri=f"sip:{ext.extension}@{domain}",
        authorization_user=ext.extension,
        password=security.decrypt_secret(ext.password_encrypted, purpose=SIP_PASSWORD_PURPOSE),
        ice_servers=ice_servers,
        sip_domain=domain,
    )
