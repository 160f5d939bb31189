"""call statistics: the rollup rows of one (firm, hour or day, agent) spread over shards

``call_stats_hour`` and ``call_stats_day`` get ``shard`` in their primary key. On PostgreSQL
each connection adds to its own shard (mod(pg_backend_pid(), 8); sh02a1b2001t picks an
unlocked one instead: services.models.call_stats_triggers.shard_sql), so
concurrent transactions logging calls of one agent no longer queue for one row's lock until
the first commits. Existing rows become shard 0; readers already sum rows.

SQLite cannot change a primary key in place: each table is copied into its new shape. The
call and leg triggers name these tables, so they are dropped first and created again.

Revision ID: sh01a1b2001s
Revises: cs01a1b2001r
Create Date: 2026-12-01 11:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from services.models.call_stats_triggers import drop_ddl, trigger_ddl


revision: str = 'sh01a1b2001s'
down_revision: Union[str, None] = 'cs01a1b2001r'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_TABLES = (('call_stats_hour', 'hour_start'), ('call_stats_day', 'day_start'))


def _figures(table: str) -> list[str]:
    columns = [c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)]
    return [c for c in columns if c not in ('tenant_id', 'hour_start', 'day_start', 'agent_key', 'shard')]


def _rekey(with_shard: bool) -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_ddl(dialect):
        op.execute(statement)
    for table, slot in _TABLES:
        key = ['tenant_id', slot, 'agent_key'] + (['shard'] if with_shard else [])
        if dialect == 'postgresql':
            if with_shard:
                op.execute(f'ALTER TABLE {table} ADD COLUMN shard SMALLINT NOT NULL DEFAULT 0')
            else:
                # The shards of a key summed into one row before the key loses them.
                figures = _figures(table)
                sums = ', '.join(f'SUM({c}) AS {c}' for c in figures)
                op.execute(f'CREATE TEMPORARY TABLE {table}_merged AS SELECT tenant_id, {slot}, agent_key, {sums}'
                           f' FROM {table} GROUP BY tenant_id, {slot}, agent_key')
                op.execute(f'DELETE FROM {table}')
                op.execute(f'ALTER TABLE {table} DROP COLUMN shard')
                op.execute(f'INSERT INTO {table} (tenant_id, {slot}, agent_key, {", ".join(figures)})'
                           f' SELECT * FROM {table}_merged')
                op.execute(f'DROP TABLE {table}_merged')
            # (Gone already when the shard column went: it was part of it.)
            op.execute(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey')
            op.execute(f'ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY ({", ".join(key)})')
            continue
        # SQLite: a WITHOUT ROWID table in its new shape, the rows copied (summed by key when
        # the shards go), then put in the old one's place.
        figures = _figures(table)
        columns = [
            f'{c["name"]} {c["type"]} NOT NULL' + (f' DEFAULT {c["default"]}' if c['default'] is not None else '')
            for c in sa.inspect(op.get_bind()).get_columns(table) if c['name'] != 'shard'
        ]
        if with_shard:
            columns.append('shard SMALLINT DEFAULT 0 NOT NULL')
        op.execute(
            f'CREATE TABLE {table}_new ({", ".join(columns)}, PRIMARY KEY ({", ".join(key)}),'
            f' FOREIGN KEY(tenant_id) REFERENCES tenant (id) ON DELETE CASCADE) WITHOUT ROWID'
        )
        names = ['tenant_id', slot, 'agent_key', *figures]
        if with_shard:
            op.execute(f'INSERT INTO {table}_new ({", ".join(names)}, shard) SELECT {", ".join(names)}, 0 FROM {table}')
        else:
            sums = ', '.join(f'SUM({c})' for c in figures)
            op.execute(f'INSERT INTO {table}_new ({", ".join(names)}) SELECT tenant_id, {slot}, agent_key, {sums}'
                       f' FROM {table} GROUP BY tenant_id, {slot}, agent_key')
        op.execute(f'DROP TABLE {table}')
        op.execute(f'ALTER TABLE {table}_new RENAME TO {table}')
    for statement in trigger_ddl(dialect, shards='pid' if with_shard else 'none'):
        op.execute(statement)


def upgrade() -> None:
    _rekey(with_shard=True)


def downgrade() -> None:
    _rekey(with_shard=False)
