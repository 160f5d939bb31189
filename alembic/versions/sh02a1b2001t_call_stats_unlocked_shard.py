"""call statistics: a rollup trigger adds to a shard no other transaction holds

On PostgreSQL the triggers of sh01a1b2001s added to the writing connection's shard,
mod(pg_backend_pid(), 8): with a pool of tens of connections, two transactions logging calls
of one agent at once often fell in one shard, and the second waited for the first's commit
(the row's lock), holding its own group of calls open meanwhile. Each trigger now takes a row
of the key that no other transaction has locked (FOR UPDATE SKIP LOCKED), else adds a new one
(services.models.call_stats_triggers.shard_sql). The rows and their sums are unchanged: only
the functions the triggers call are replaced. SQLite (one writer, always shard 0): the same
triggers.

Revision ID: sh02a1b2001t
Revises: sh01a1b2001s
Create Date: 2026-12-01 14:30:00
"""
from typing import Sequence, Union

from alembic import op
from services.models.call_stats_triggers import drop_ddl, trigger_ddl


revision: str = 'sh02a1b2001t'
down_revision: Union[str, None] = 'sh01a1b2001s'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _triggers(shards: str) -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_ddl(dialect):
        op.execute(statement)
    for statement in trigger_ddl(dialect, shards=shards):
        op.execute(statement)


def upgrade() -> None:
    _triggers('unlocked')


def downgrade() -> None:
    _triggers('pid')
