"""live_change: the change log read by the embedded (SQLite) live-update bus

Revision ID: pu01a0b20007
Revises: 1a0e0b5c0007
Create Date: 2026-11-30 13:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'pu01a0b20007'
down_revision: Union[str, None] = '1a0e0b5c0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('live_change',
    sa.Column('firm', sa.Integer(), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topic', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_live_change_created_at'), 'live_change', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_live_change_created_at'), table_name='live_change')
    op.drop_table('live_change')
