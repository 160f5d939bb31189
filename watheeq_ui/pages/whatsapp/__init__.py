"""The WhatsApp page: ``state`` holds what the page knows, ``rows`` what it shows, ``view`` draws it
(and registers the route)."""

from watheeq_ui.pages.whatsapp import view  # noqa: F401  (importing registers the page)
from watheeq_ui.pages.whatsapp.rows import qr_data_url
from watheeq_ui.pages.whatsapp.state import WhatsappState

__all__ = ["WhatsappState", "qr_data_url", "view"]
