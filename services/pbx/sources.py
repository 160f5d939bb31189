"""Which :class:`~services.pbx.records.CdrSource` a firm's PBX settings name.

``settings.cdr_source``: ``""`` none (only the softphone logs calls), ``"lab"`` the PBX lab
(dev/pbx_lab, what ``make run`` / scripts/dev_pbx.sh run; its folder is ``DEV_PBX_DIR``,
default ``<repo>/.dev-pbx``, as in scripts/run.sh), ``"ucm"`` the Grandstream UCM6301's
HTTPS API and real-time output (:mod:`services.pbx.ucm`).
"""

from __future__ import annotations

import os
from pathlib import Path

from services.models import PbxSettings
from services.pbx.records import CdrSource, CdrSourceError

ROOT = Path(__file__).resolve().parents[2]
CDR_SOURCES = ("", "lab", "ucm")


def default_lab_dir() -> Path:
    """Where scripts/run.sh and scripts/dev_pbx.sh put the lab's runtime files."""
    return Path(os.environ.get("DEV_PBX_DIR") or ROOT / ".dev-pbx")


def source_for(settings: PbxSettings, *, lab_dir: Path | None = None, timezone: str | None = None
               ) -> CdrSource | None:
    """The firm's CDR source, or None when it has none configured. ``timezone``: the firm's
    (Tenant.timezone), in which a UCM writes its record times (default Asia/Riyadh). Raises
    :class:`CdrSourceError` (``not_configured``) when the settings name a source but lack
    what it needs (a UCM without API URL, user or password; a lab firm without SIP domain)."""
    kind = (settings.cdr_source or "").strip().lower()
    if kind == "":
        return None
    if kind == "lab":
        if not settings.sip_domain:
            raise CdrSourceError("not_configured", "The PBX lab needs the firm's SIP domain in the PBX settings.")
        from services.pbx.lab import LabCdrSource

        return LabCdrSource(lab_dir or default_lab_dir(), sip_domain=settings.sip_domain)
    if kind == "ucm":
        from services.pbx.ucm import UcmCdrSource

        return UcmCdrSource.from_settings(settings, timezone=timezone)
    raise CdrSourceError("not_configured", f"Unknown call-record source {kind!r} (choose none, lab or ucm).")


__all__ = ["CDR_SOURCES", "default_lab_dir", "source_for"]
