"""One module per page; importing them registers their routes."""

from watheeq_ui.pages import calls, dashboard, login  # noqa: F401
