"""Every route of the dashboard, in one place."""

LOGIN = "/login"
DASHBOARD = "/"
CALLS = "/calls"
CLIENTS = "/clients"
CLIENT = "/clients/[client_id]"
EXTENSIONS = "/extensions"
WHATSAPP = "/whatsapp"
WALLBOARD = "/wallboard"
CALLBACKS = "/callbacks"
AGENT_REPORT = "/agent-report"
USERS = "/users"
ACCOUNT = "/account"
RECORDINGS = "/recordings"
# Public: where a one-time link lets a user set their password.
SET_PASSWORD = "/set-password"


def client(client_id: int | str) -> str:
    return f"{CLIENTS}/{client_id}"
