"""recordings: fetch attempts and backoff, last fetch error, purge time

Revision ID: rec5a1b20007
Revises: le01a7c30007
Create Date: 2026-11-30 12:35:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'rec5a1b20007'
down_revision: Union[str, None] = 'le01a7c30007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('call_recording', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetch_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('fetch_after', services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('fetch_error', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('purged_at', services.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('call_recording', schema=None) as batch_op:
        batch_op.drop_column('purged_at')
        batch_op.drop_column('fetch_error')
        batch_op.drop_column('fetch_after')
        batch_op.drop_column('fetch_attempts')
