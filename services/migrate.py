"""Run the Alembic migrations programmatically (the CLI's ``migrate``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from services import db
from services.config import PROJECT_ROOT


def alembic_config(url: str | None = None) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str | None = None) -> None:
    """Bring the database at ``url`` (default: the configured one) to the newest schema."""
    command.upgrade(alembic_config(url or str(db.get_engine().url.render_as_string(hide_password=False))), "head")
