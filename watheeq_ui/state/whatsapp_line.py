"""The firm's WhatsApp line status, shown in the header of every page."""

from __future__ import annotations

import reflex as rx

from services import config, db, whatsapp

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
        # A timer: it checks the session but does not keep an unattended tab alive.
        principal = await principal_for_page(self, activity=False)
        if principal is None:
            return
        with db.session_scope() as session:
            line = whatsapp.get_session_status(session=session, tenant_id=principal.tenant_id, actor=principal)
        self.status = line.status.value
        self.service_down = not line.service_running
        self.phone_number = line.phone_number or ""
        self.simulator = config.whatsapp_gateway() == "simulator"
