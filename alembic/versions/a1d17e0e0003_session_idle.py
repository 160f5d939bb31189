"""api_token: last use and idle timeout, so idle time is measured on the server

Revision ID: a1d17e0e0003
Revises: a1d17e0e0002
Create Date: 2026-11-30 09:40:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import services.models


revision: str = 'a1d17e0e0003'
down_revision: Union[str, None] = 'a1d17e0e0002'
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
