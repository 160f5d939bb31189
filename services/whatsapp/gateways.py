"""The gateway factory: which WhatsApp library runs the firms' clients.

Kept apart from ``gateway`` (the interface) because the implementations import the interface;
each is imported only when chosen, so the simulator never loads neonize.
"""

from __future__ import annotations

from services import config
from services.whatsapp.gateway import Gateway, GatewayEvents


def create_gateway(sink: GatewayEvents, name: str | None = None) -> Gateway:
    """The configured gateway (``WATHEEQ_WHATSAPP_GATEWAY``: ``neonize`` or ``simulator``)."""
    name = (name or config.whatsapp_gateway()).lower()
    if name == "simulator":
        from services.whatsapp.simulator import SimulatorGateway

        return SimulatorGateway(sink)
    if name == "neonize":
        from services.whatsapp.neonize_gateway import NeonizeGateway

        return NeonizeGateway(sink)
    raise ValueError(f"unknown WhatsApp gateway {name!r} (neonize or simulator)")
