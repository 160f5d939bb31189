"""Which extensions hold a registration at the PBX, read into agent presence.

The softphone's tab says "registered" and beats every 10 s, but a tab is not the PBX: a
laptop that sleeps with the page open, or a phone whose registration expired while the tab
still runs, would stay "Available" while the ring group cannot reach it. So the server asks
the PBX itself, periodically, which extensions are registered, and an agent whose extension
has no registration is Offline (:func:`services.presence.apply_registrations`).

One reader per backend process (watheeq_ui/background.py), never one per tab: each round is
one question to the PBX (Kamailio answers every firm on it at once) and, per firm, one
short transaction. Several workers each reading is harmless: moving an agent Offline twice
is a no-op.

A PBX is reached through a :class:`RegistrationSource`:

- :class:`KamailioRegistrations`: the PBX lab (dev/kamailio/kamailio.cfg, started by
  ``make run``), through Kamailio's control socket (``WATHEEQ_DEV_PBX_CTL``) and
  ``kamcmd ul.dump``, the registrar's location table (usrloc). It serves the firms whose
  PBX settings point at this machine; their SIP domain is the AoR's domain.
- A Grandstream UCM (not built yet) plugs in the same way, one firm per UCM. What the UCM
  offers, from its HTTPS API guides (the same ``POST /api`` with challenge / login / cookie
  as services/pbx/ucm.py; verify on the firm's UCM6301): the action ``listAccount``
  (``options`` such as ``extension,status,addr``, paged with ``item_num`` / ``page``) lists
  the extensions with a ``status`` of ``Idle``, ``InUse``, ``Busy``, ``Ringing`` or
  ``Unavailable`` (not registered) and ``addr``, the registered contact's address; with its
  AMI enabled, Asterisk's ``PeerStatus`` events (Registered / Unregistered) tell the same as
  they happen. An adapter returns the extensions whose status is not ``Unavailable``; the
  UCM's queue pause / DND for Away agents stays as the README describes.
"""

from __future__ import annotations

import abc
import logging
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from services import db, presence
from services.call_center import extensions
from services.models import PbxSettingsPublic, Tenant, utcnow

log = logging.getLogger(__name__)

# How often the reader asks the PBX: an agent whose registration ended is Offline within it.
READ_SECONDS = 5.0


class RegistrationSourceError(Exception):
    """The PBX could not be asked this round (down, restarting, refused): nothing changes."""


class RegistrationSource(abc.ABC):
    """A PBX that can tell which of a firm's extensions are registered now."""

    @abc.abstractmethod
    def serves(self, pbx: PbxSettingsPublic) -> bool:
        """Whether the firm with these PBX settings is on this PBX."""

    @abc.abstractmethod
    def registered(self, firms: Mapping[int, PbxSettingsPublic]) -> dict[int, frozenset[str]]:
        """``{tenant id: extensions registered now}`` for the ``firms`` it could read (a firm
        left out is unknown this round); :class:`RegistrationSourceError` when it read none."""


def _lab_domain(pbx: PbxSettingsPublic) -> str:
    return (pbx.sip_domain or pbx.host).strip().lower()


# ``kamcmd ul.dump`` prints, per AoR, "AoR: <user>@<domain>" then its contacts, each with an
# "Expires:" line: seconds left, "permanent", or "expired"/"deleted" for one on its way out.
_AOR = re.compile(r"^\s*AoR:\s*(\S+)\s*$")
_EXPIRES = re.compile(r"^\s*Expires:\s*(\S+)\s*$")


def parse_ul_dump(text: str) -> set[tuple[str, str]]:
    """The ``(user, domain)`` AoRs of a ``kamcmd ul.dump`` with at least one live contact."""
    live: set[tuple[str, str]] = set()
    aor: tuple[str, str] | None = None
    for line in text.splitlines():
        if found := _AOR.match(line):
            user, _, domain = found.group(1).partition("@")
            aor = (user, domain.lower())
        elif (found := _EXPIRES.match(line)) and aor is not None:
            value = found.group(1)
            if value == "permanent" or (value.isdigit() and int(value) > 0):
                live.add(aor)
    return live


class KamailioRegistrations(RegistrationSource):
    """Kamailio's location table through its control socket (``unix:/path/kamailio.ctl``)."""

    def __init__(self, ctl: str, *, timeout: float = 5.0) -> None:
        self.ctl = ctl
        self.timeout = timeout

    def serves(self, pbx: PbxSettingsPublic) -> bool:
        return extensions.is_loopback_host(pbx.host) and bool(_lab_domain(pbx))

    def dump(self) -> str:
        try:
            done = subprocess.run(["kamcmd", "-s", self.ctl, "ul.dump"], capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RegistrationSourceError(f"kamcmd ul.dump: {exc}") from exc
        if done.returncode != 0:
            raise RegistrationSourceError(f"kamcmd ul.dump failed: {done.stderr.strip()[:200]}")
        return done.stdout

    def registered(self, firms: Mapping[int, PbxSettingsPublic]) -> dict[int, frozenset[str]]:
        live = parse_ul_dump(self.dump())
        out: dict[int, frozenset[str]] = {}
        for tenant_id, pbx in firms.items():
            domain = _lab_domain(pbx)
            out[tenant_id] = frozenset(user for user, at in live if at == domain)
        return out


@dataclass(frozen=True)
class ReadResult:
    firms: int  # firms read this round
    moved: int  # agents moved Offline


def read_once(source: RegistrationSource, *, now: datetime | None = None) -> ReadResult:
    """One round: the firms on ``source``'s PBX, their registrations, presence updated.

    The PBX is asked outside any transaction; the time of the question goes with the answer,
    so an agent whose state changed after it (the phone registered meanwhile) is left alone.
    """
    with db.session_scope() as session:
        firms: dict[int, PbxSettingsPublic] = {}
        for tenant_id in session.execute(sa.select(Tenant.id).order_by(Tenant.id)).scalars():
            pbx = extensions.get_pbx_settings(session=session, tenant_id=tenant_id)
            if pbx is not None and source.serves(pbx):
                firms[tenant_id] = pbx
    if not firms:
        return ReadResult(firms=0, moved=0)
    asked_at = now or utcnow()
    answer = source.registered(firms)
    moved = 0
    for tenant_id, registered in answer.items():
        with db.session_scope() as session:
            moved += presence.apply_registrations(session=session, tenant_id=tenant_id, registered=registered, read_at=asked_at)
    return ReadResult(firms=len(answer), moved=moved)


__all__ = [
    "READ_SECONDS",
    "KamailioRegistrations",
    "ReadResult",
    "RegistrationSource",
    "RegistrationSourceError",
    "parse_ul_dump",
    "read_once",
]
