"""One module per page; importing them registers their routes."""

from watheeq_ui.pages import (  # noqa: F401
    account,
    agent_report,
    callbacks,
    calls,
    clients,
    dashboard,
    extensions,
    login,
    recordings,
    set_password,
    users,
    wallboard,
    whatsapp,
)
