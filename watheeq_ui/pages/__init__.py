"""One module per page; importing them registers their routes."""

from watheeq_ui.pages import calls, clients, dashboard, extensions, login, whatsapp  # noqa: F401
