"""Whether this deployment can serve: what ``/api/v1/ready`` reports to the proxy and to
monitoring (``/api/v1/health`` only says the process answers and reaches its database).

Each check gives ``ok`` and a short reason; none reports a URL, host or credential. A
check that does not apply (no ``REDIS_URL``: one worker, state in memory) is ``ok`` with
reason "not configured".
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session

from services import config, db
from services.migrate import alembic_config


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str


def _database(engine: sa.Engine) -> Check:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return Check("database", False, "unreachable")
    return Check("database", True, "reachable")


def _migrations(engine: sa.Engine) -> Check:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    try:
        with engine.connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except sa.exc.SQLAlchemyError:
        return Check("migrations", False, "database unreachable")
    if current == heads:
        return Check("migrations", True, "at head")
    return Check("migrations", False, "not at the newest schema: run `python -m services.cli migrate`")


def _redis() -> Check:
    url = config.get("REDIS_URL")
    if not url:
        return Check("redis", True, "not configured")
    import redis  # Reflex's own dependency; imported only when a deployment uses Redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        return Check("redis", False, "unreachable")
    finally:
        client.close()
    return Check("redis", True, "reachable")


def _sidecars(engine: sa.Engine) -> Check:
    from services.whatsapp.leases import unheld_lines

    try:
        with Session(engine) as session:
            unheld = unheld_lines(session=session)
    except sa.exc.SQLAlchemyError:
        return Check("sidecars", False, "database unreachable")
    if unheld:
        return Check("sidecars", False, f"{unheld} WhatsApp line(s) wanted connected have no sidecar holding them")
    return Check("sidecars", True, "every wanted WhatsApp line is held by a sidecar")


def checks(engine: sa.Engine | None = None) -> list[Check]:
    engine = engine or db.get_engine()
    database = _database(engine)
    if not database.ok:
        return [database, Check("migrations", False, "database unreachable"), _redis(),
                Check("sidecars", False, "database unreachable")]
    return [database, _migrations(engine), _redis(), _sidecars(engine)]
