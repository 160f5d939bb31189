"""Alembic environment: the schema of services.models on the configured database."""

from alembic import context
from sqlmodel import SQLModel

import services.models  # noqa: F401  (registers every table on SQLModel.metadata)
from services import db

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connectable = context.config.attributes.get("connection")
    if connectable is not None:
        _run(connectable)
        return
    engine = db.create_db_engine(context.config.attributes.get("url"))
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # New migrations name custom types by the package's public path (services.models.UTCDateTime).
        user_module_prefix="services.models.",
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `python -m services.cli migrate`")
run_migrations_online()
