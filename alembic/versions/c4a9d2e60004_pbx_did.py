"""pbx settings did (the firm's public number on the trunk)

Revision ID: c4a9d2e60004
Revises: d3e5e55e0005
Create Date: 2026-11-30 10:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = 'c4a9d2e60004'
down_revision: Union[str, None] = 'd3e5e55e0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('pbx_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('did', sqlmodel.sql.sqltypes.AutoString(length=16), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('pbx_settings', schema=None) as batch_op:
        batch_op.drop_column('did')
