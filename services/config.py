"""Settings read from the environment, with a local ``.env`` for development.

The same variables drive the CLI, the API, the Reflex app and the sidecar, so an
operator points all of them at one database with one variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite:///watheeq.db"

_env_loaded = False


def env_file() -> Path:
    return Path(os.environ.get("WATHEEQ_ENV_FILE", PROJECT_ROOT / ".env"))


def load_env_file() -> None:
    """Read ``KEY=VALUE`` lines of the local .env into os.environ (real env wins)."""
    global _env_loaded
    if _env_loaded:
        return
    _env_loaded = True
    path = env_file()
    if not path.is_file():
        return
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        os.environ.setdefault(key.strip(), value.strip().strip('"').strip("'"))


def get(name: str, default: str | None = None) -> str | None:
    load_env_file()
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def database_url() -> str:
    return get("WATHEEQ_DATABASE_URL", DEFAULT_DATABASE_URL) or DEFAULT_DATABASE_URL


def whatsapp_gateway() -> str:
    return (get("WATHEEQ_WHATSAPP_GATEWAY", "neonize") or "neonize").lower()


def is_production() -> bool:
    return (get("WATHEEQ_ENV", "development") or "development").lower() == "production"


_ORIGIN = re.compile(r"^https?://(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:[0-9]{1,5})?$")


def cors_origins() -> list[str]:
    """The browser origins allowed to call the backend with the user's credentials.

    ``WATHEEQ_CORS_ORIGINS`` (comma-separated ``scheme://host[:port]``) when set; otherwise
    the app's own frontend on this machine (``WATHEEQ_FRONTEND_PORT``, default 3000). A
    wildcard is refused: with credentials allowed, it would let any web page act with the
    session of whoever visits it.
    """
    raw = get("WATHEEQ_CORS_ORIGINS")
    if raw is None:
        port = get("WATHEEQ_FRONTEND_PORT", "3000")
        return [f"http://localhost:{port}", f"http://127.0.0.1:{port}", f"http://[::1]:{port}"]
    origins = [o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip()]
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ValueError(
                f"WATHEEQ_CORS_ORIGINS: {origin!r} is not an origin such as https://app.example.com "
                "(a wildcard is not allowed)"
            )
    if not origins:
        raise ValueError("WATHEEQ_CORS_ORIGINS is set but names no origin")
    return origins
