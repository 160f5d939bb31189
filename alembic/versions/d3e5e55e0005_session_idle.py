"""api_token: last use and idle timeout, so idle time is measured on the server

Revision ID: d3e5e55e0005
Revises: c2a0ac0c0004
Create Date: 2026-11-30 09:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import services.models


revision: str = 'd3e5e55e0005'
down_revision: Union[str, None] = 'c2a0ac0c0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('idle_timeout_seconds', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('idle_timeout_seconds')
        batch_op.drop_column('last_used_at')
