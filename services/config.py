"""Settings read from the environment, with a local ``.env`` for development.

The same variables drive the CLI, the API, the Reflex app and the sidecar, so an
operator points all of them at one database with one variable.
"""

from __future__ import annotations

import os
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
