"""The firm's WhatsApp line status, shown in the header of every page."""

from __future__ import annotations

import reflex as rx

from services import config, db, live, live_sources, whatsapp
from services.models import Principal, WhatsappStatusPublic

from watheeq_ui import live_tabs
from watheeq_ui.state import offloop
from watheeq_ui.state.auth import principal_for_page


class WhatsappLineState(rx.State):
    """The firm's WhatsApp line status in the header of every page (the WhatsApp page keeps it current)."""

    status: str = ""
    phone_number: str = ""
    simulator: bool = False
    # No sidecar holds the line: the header says the service is not running.
    service_down: bool = False

    @rx.event
    async def refresh(self):
        """A loader of every signed-in page; the line's changes are then pushed (live_tabs)."""
        await self._load()

    async def _load(self) -> None:
        # Not activity: it must not keep an unattended tab alive.
        principal = await principal_for_page(self, activity=False)
        if principal is None:
            return
        line = await offloop.run(_read_line, principal)
        live_tabs.follow(self, principal.tenant_id, principal.user_id, "whatsapp", layout=True)
        self.status = line.status.value
        self.service_down = not line.service_running
        self.phone_number = line.phone_number or ""
        self.simulator = config.whatsapp_gateway() == "simulator"

    async def on_live_change(self, change: live.Change) -> None:
        """The firm's WhatsApp changed: only a change of the line itself is re-read."""
        if change.ref == live_sources.LINE:
            await self._load()


def _read_line(principal: Principal) -> WhatsappStatusPublic:
    with db.session_scope() as session:
        return whatsapp.get_session_status(session=session, tenant_id=principal.tenant_id, actor=principal)
