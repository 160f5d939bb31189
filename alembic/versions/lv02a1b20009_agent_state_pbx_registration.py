"""agent state: what the PBX said of the agent's registration at its last reading

Revision ID: lv02a1b20009
Revises: cf01a1b20009
Create Date: 2026-11-30 16:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import services.models


revision: str = 'lv02a1b20009'
down_revision: Union[str, None] = 'cf01a1b20009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('agent_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pbx_registered', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('pbx_read_at', services.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('agent_state', schema=None) as batch_op:
        batch_op.drop_column('pbx_read_at')
        batch_op.drop_column('pbx_registered')
