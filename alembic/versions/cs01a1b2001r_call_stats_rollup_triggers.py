"""call statistics: hourly and daily rollups kept by triggers (call_stats_hour, call_stats_day) replace the lazy ones

The rollups of every existing call and leg are computed here, then the triggers keep them
(services.models.call_stats_triggers). call_hourly_rollup and call_rollup_hour, summed lazily
on the first request, are dropped.

A later migration that rebuilds ``call`` or ``call_leg`` on SQLite (batch_alter_table copies
the table) drops their triggers with the old table: it must create them again
(``trigger_ddl``); tests/test_migrations.py checks they exist at head.

Revision ID: cs01a1b2001r
Revises: ns02a1b2010n
Create Date: 2026-11-30 20:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import services.models
from services.models.call_stats import CALL_FIGURES, ROLLUP_FIGURES
from services.models.call_stats_triggers import drop_ddl, rebuild_sql, trigger_ddl


revision: str = 'cs01a1b2001r'
down_revision: Union[str, None] = 'ns02a1b2010n'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_BIG = {'ring_seconds_sum', 'talk_seconds_sum', 'agent_talk_seconds_sum'}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('call_hourly_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_call_hourly_rollup_tenant_hour')
        batch_op.drop_index(batch_op.f('ix_call_hourly_rollup_tenant_id'))
    op.drop_table('call_hourly_rollup')
    with op.batch_alter_table('call_rollup_hour', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_rollup_hour_tenant_id'))
    op.drop_table('call_rollup_hour')

    for table, slot, figures in (('call_stats_hour', 'hour_start', ROLLUP_FIGURES), ('call_stats_day', 'day_start', CALL_FIGURES)):
        op.create_table(
            table,
            sa.Column('tenant_id', sa.Integer(), nullable=False),
            sa.Column(slot, services.models.UTCDateTime(), nullable=False),
            sa.Column('agent_key', sa.Integer(), autoincrement=False, nullable=False),
            *(
                sa.Column(name, sa.BigInteger() if name in _BIG else sa.Integer(), nullable=False, server_default='0')
                for name in figures
            ),
            sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
            sa.PrimaryKeyConstraint('tenant_id', slot, 'agent_key'),
            sqlite_with_rowid=False,
            postgresql_with={'fillfactor': 70},
        )
    # Computed before the triggers exist: nothing writes calls during a migration. Both as
    # they were before the tables had shards (sh01a1b2001s adds them).
    for statement in rebuild_sql(dialect, sharded=False):
        op.execute(statement)
    for statement in trigger_ddl(dialect, shards="none"):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_ddl(dialect):
        op.execute(statement)
    op.drop_table('call_stats_day')
    op.drop_table('call_stats_hour')
    # The lazy rollups fill themselves on the next request.
    op.create_table(
        'call_rollup_hour',
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hour_start', services.models.UTCDateTime(), nullable=False),
        sa.Column('stale', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('tenant_id', 'hour_start', name='uq_call_rollup_hour_tenant_hour'),
    )
    with op.batch_alter_table('call_rollup_hour', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_rollup_hour_tenant_id'), ['tenant_id'], unique=False)
    op.create_table(
        'call_hourly_rollup',
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('hour_start', services.models.UTCDateTime(), nullable=False),
        sa.Column('agent_user_id', sa.Integer(), nullable=True),
        *(
            sa.Column(name, sa.BigInteger() if name in _BIG else sa.Integer(), nullable=False,
                      **({'server_default': '0'} if name.startswith('agent_talk') else {}))
            for name in ROLLUP_FIGURES[:12]
        ),
        sa.ForeignKeyConstraint(['agent_user_id'], ['user.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('call_hourly_rollup', schema=None) as batch_op:
        batch_op.create_index('ix_call_hourly_rollup_tenant_hour', ['tenant_id', 'hour_start'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_hourly_rollup_tenant_id'), ['tenant_id'], unique=False)
