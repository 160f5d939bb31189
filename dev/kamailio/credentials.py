"""Write the dev Kamailio's digest credentials from the database.

Only firms whose PBX host is a loopback address use the dev PBX, so only their
extensions are exported. Each password is decrypted through the extension service and
written as HA1 = md5(extension:domain:password), the form Kamailio's
``pv_www_authenticate(..., "1")`` checks against; the clear password is never written.
Each firm's SIP domain is listed too: the PBX serves those domains only and never routes
a call from one to another, so two firms can both have a 1001. So are each firm's DID (the
trunk rings that firm for it) and its ring group (every extension of the firm, in number
order: all of them ring at once for a call to the DID), less the agents who are Away
(``dnd``; kept current while the PBX runs by dev/kamailio/dnd.py).

    python dev/kamailio/credentials.py OUTPUT.cfg
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlmodel import Session, select  # noqa: E402

from services import db  # noqa: E402
from services.call_center import extensions  # noqa: E402
from services.models import AgentState, AgentStatus, SipExtension, Tenant  # noqa: E402
from services.tenancy import tenant_select  # noqa: E402

# Anything else could break out of the quoted config string.
_SAFE = re.compile(r"^[A-Za-z0-9_.+\-]{1,64}$")


def ha1(user: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()  # noqa: S324 - RFC 2617 digest


class Export:
    """What the dev PBX learns from the database."""

    def __init__(self, creds: dict[str, str], domains: dict[str, int], warnings: list[str]) -> None:
        self.creds = creds  # "<extension>@<domain>" -> HA1
        self.domains = domains  # domain -> tenant id
        self.dids: dict[str, str] = {}  # DID digits (no "+") -> domain
        self.ring_groups: dict[str, list[str]] = {}  # domain -> extensions
        self.dnd: set[str] = set()  # "<extension>@<domain>" of agents who are Away
        self.warnings = warnings


def loopback_export(session: Session) -> Export:
    """Credentials, domains, DIDs and ring groups of every firm on the loopback PBX."""
    creds, domains, warnings = loopback_credentials(session)
    out = Export(creds=creds, domains=domains, warnings=warnings)
    for domain, tenant_id in sorted(domains.items(), key=lambda item: item[1]):
        pbx = extensions.get_pbx_settings(session=session, tenant_id=tenant_id)
        digits = pbx.did.lstrip("+") if pbx and pbx.did else ""
        if digits:
            if digits in out.dids:
                out.warnings.append(f"firm {tenant_id}: DID {pbx.did} already used by {out.dids[digits]}; skipped")
            else:
                out.dids[digits] = domain
        members = sorted((key.split("@", 1)[0] for key in creds if key.endswith(f"@{domain}")),
                         key=lambda ext: (len(ext), ext))
        out.ring_groups[domain] = members
    out.dnd = away_keys(session, domains)
    return out


def away_keys(session: Session, domains: dict[str, int]) -> set[str]:
    """``"<extension>@<domain>"`` of every loopback firm's agent who is Away now."""
    keys: set[str] = set()
    for domain, tenant_id in domains.items():
        away_users = {state.user_id for state in session.exec(
            tenant_select(AgentState, tenant_id).where(AgentState.status == AgentStatus.AWAY)
        ).all()}
        if not away_users:
            continue
        for row in session.exec(tenant_select(SipExtension, tenant_id)).all():
            if row.user_id in away_users and _SAFE.match(row.extension):
                keys.add(f"{row.extension}@{domain}")
    return keys


def loopback_credentials(session: Session) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """``{"<extension>@<domain>": ha1}`` for every loopback firm's extension, each such
    firm's ``{domain: tenant id}``, and warnings."""
    creds: dict[str, str] = {}
    domains: dict[str, int] = {}
    warnings: list[str] = []
    for tenant in session.exec(select(Tenant).order_by(Tenant.id)).all():
        pbx = extensions.get_pbx_settings(session=session, tenant_id=tenant.id)
        if pbx is None or not extensions.is_loopback_host(pbx.host):
            continue
        domain = pbx.sip_domain or pbx.host
        if not _SAFE.match(domain):
            warnings.append(f"firm {tenant.id}: SIP domain {domain!r} skipped (characters Kamailio config cannot hold)")
            continue
        if domains.get(domain, tenant.id) != tenant.id:
            # Sharing a domain would let one firm's 1001 take the other's calls.
            warnings.append(f"firm {tenant.id}: SIP domain {domain} already used by firm {domains[domain]}; skipped")
            continue
        domains[domain] = tenant.id
        rows = session.exec(tenant_select(SipExtension, tenant.id).order_by(SipExtension.id)).all()
        for row in rows:
            cfg = extensions.get_extension_for_user(session=session, tenant_id=tenant.id, user_id=row.user_id)
            if not (_SAFE.match(cfg.authorization_user) and _SAFE.match(cfg.sip_domain)):
                warnings.append(f"firm {tenant.id}: extension {cfg.extension!r} skipped (characters Kamailio config cannot hold)")
                continue
            key = f"{cfg.authorization_user}@{cfg.sip_domain}"
            creds[key] = ha1(cfg.authorization_user, cfg.sip_domain, cfg.password)
    return creds, domains, warnings


def render(creds: dict[str, str], domains: dict[str, int] | None = None, dids: dict[str, str] | None = None,
           ring_groups: dict[str, list[str]] | None = None, dnd: set[str] | None = None) -> str:
    lines = ["# Generated by dev/kamailio/credentials.py; do not edit, do not commit.", "event_route[htable:mod-init] {"]
    lines += [f'\t$sht(domains=>{domain}) = {tenant_id};' for domain, tenant_id in sorted((domains or {}).items())]
    lines += [f'\t$sht(ha1=>{key}) = "{value}";' for key, value in sorted(creds.items())]
    lines += [f'\t$sht(dids=>{digits}) = "{domain}";' for digits, domain in sorted((dids or {}).items())]
    for domain, members in sorted((ring_groups or {}).items()):
        lines.append(f'\t$sht(ringgroup=>{domain}::n) = {len(members)};')
        lines += [f'\t$sht(ringgroup=>{domain}::{i}) = "{ext}";' for i, ext in enumerate(members)]
    lines += [f'\t$sht(dnd=>{key}) = 1;' for key in sorted(dnd or ())]
    if not creds and not domains:
        lines.append("\t$var(none) = 0;")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write(path: Path, session: Session) -> list[str]:
    export = loopback_export(session)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(render(export.creds, export.domains, export.dids, export.ring_groups, export.dnd))
    dids = ", ".join(f"+{d} -> {dom}" for d, dom in sorted(export.dids.items())) or "none"
    return export.warnings + [f"{len(export.creds)} extension(s) exported; DIDs on the trunk: {dids}"]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with db.session_scope() as session:
        for line in write(Path(argv[1]), session):
            print(f"dev-pbx: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
