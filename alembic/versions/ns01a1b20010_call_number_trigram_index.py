"""call number search: a trigram index over coalesce(remote_e164, remote_number)

SQLite: an FTS5 table with the trigram tokenizer kept by triggers (filled from the calls
there are); PostgreSQL: pg_trgm and a GIN index on the expression. The statements are the
ones the model creates with the table (services.models.call_center.NUMBER_INDEX_*).

Revision ID: ns01a1b20010
Revises: lv02a1b20009
Create Date: 2026-11-30 17:40:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from services.models.call_center import (
    NUMBER_FTS,
    NUMBER_INDEX_POSTGRES,
    NUMBER_INDEX_POSTGRES_DROP,
    NUMBER_INDEX_POSTGRES_EXTENSION,
    NUMBER_INDEX_POSTGRES_SCHEMA,
    NUMBER_INDEX_SQLITE,
    NUMBER_INDEX_SQLITE_DROP,
)

revision: str = 'ns01a1b20010'
down_revision: Union[str, None] = 'lv02a1b20009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in NUMBER_INDEX_SQLITE:
            op.execute(statement)
        op.execute(f"DELETE FROM {NUMBER_FTS}")
        op.execute(f"INSERT INTO {NUMBER_FTS}(rowid, number) SELECT id, coalesce(remote_e164, remote_number) FROM call")
    elif dialect == "postgresql":
        op.execute(NUMBER_INDEX_POSTGRES_EXTENSION)
        schema = op.get_bind().execute(sa.text(NUMBER_INDEX_POSTGRES_SCHEMA)).scalar_one()
        op.execute(NUMBER_INDEX_POSTGRES.format(schema=schema.strip('"')))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in NUMBER_INDEX_SQLITE_DROP if dialect == "sqlite" else NUMBER_INDEX_POSTGRES_DROP:
        op.execute(statement)
