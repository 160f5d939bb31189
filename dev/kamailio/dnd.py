"""Keep the running lab PBX's "do not disturb" table equal to the agents who are Away.

The ring group (kamailio.cfg, route RINGGROUP) leaves out every ``"<extension>@<domain>"``
in the ``dnd`` htable. credentials.py fills it when the PBX starts; this module replaces it
while the PBX runs, through Kamailio's control socket (``kamcmd htable.flush`` / ``seti``).
The app calls :func:`sync` on every presence change when ``WATHEEQ_DEV_PBX_CTL`` names that
socket (watheeq_ui/background.py); a UCM is told the same through a queue pause or DND
(README, "Agent presence on a UCM").

    python dev/kamailio/dnd.py unix:/path/to/kamailio.ctl
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlmodel import Session, select  # noqa: E402

from services import db  # noqa: E402
from services.call_center import extensions  # noqa: E402
from services.models import Tenant  # noqa: E402

from dev.kamailio.credentials import _SAFE, away_keys  # noqa: E402


def loopback_domains(session: Session) -> dict[str, int]:
    """``{domain: tenant id}`` of the firms on the loopback PBX (as credentials.py exports them)."""
    domains: dict[str, int] = {}
    for tenant in session.exec(select(Tenant).order_by(Tenant.id)).all():
        pbx = extensions.get_pbx_settings(session=session, tenant_id=tenant.id)
        if pbx is None or not extensions.is_loopback_host(pbx.host):
            continue
        domain = pbx.sip_domain or pbx.host
        if _SAFE.match(domain) and domain not in domains:
            domains[domain] = tenant.id
    return domains


def sync(ctl: str, session: Session) -> set[str]:
    """Replaces the PBX's ``dnd`` table with the agents Away now; returns the keys set."""
    keys = away_keys(session, loopback_domains(session))
    commands = [["htable.flush", "dnd"], *(["htable.seti", "dnd", key, "1"] for key in sorted(keys))]
    for args in commands:
        done = subprocess.run(["kamcmd", "-s", ctl, *args], capture_output=True, text=True, timeout=5)
        if done.returncode != 0:
            raise RuntimeError(f"kamcmd {' '.join(args[:2])} failed: {done.stderr.strip()[:200]}")
    return keys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    with db.session_scope() as session:
        keys = sync(argv[1], session)
    print(f"dev-pbx: {len(keys)} agent(s) away (not rung)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
