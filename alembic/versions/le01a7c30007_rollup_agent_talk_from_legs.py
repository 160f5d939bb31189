"""call rollups: each agent's own talk (from the PBX's legs when a call has them)

Revision ID: le01a7c30007
Revises: e5f0a1b20006
Create Date: 2026-11-30 13:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = 'le01a7c30007'
down_revision: Union[str, None] = 'e5f0a1b20006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('call_hourly_rollup') as batch:
        batch.add_column(sa.Column('agent_talk_seconds_sum', sa.BigInteger(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('agent_talk_count', sa.Integer(), nullable=False, server_default='0'))
    # No call had PBX legs before this revision: each agent's own talk is the talk of their calls.
    op.execute('UPDATE call_hourly_rollup SET agent_talk_seconds_sum = talk_seconds_sum, agent_talk_count = talk_count')


def downgrade() -> None:
    with op.batch_alter_table('call_hourly_rollup') as batch:
        batch.drop_column('agent_talk_count')
        batch.drop_column('agent_talk_seconds_sum')
