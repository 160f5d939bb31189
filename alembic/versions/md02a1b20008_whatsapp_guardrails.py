"""whatsapp guardrails: first-contact daily cap, temporary ban, first-contact marks; declining calls

Revision ID: md02a1b20008
Revises: bl01a1b20008
Create Date: 2026-11-30 14:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'md02a1b20008'
down_revision: Union[str, None] = 'bl01a1b20008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('whatsapp_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_contact_daily_cap', sa.Integer(), server_default='20', nullable=False))
        batch_op.add_column(sa.Column('banned_until', services.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('ban_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('reject_calls', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('whatsapp_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('first_contact_at', services.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('whatsapp_message', schema=None) as batch_op:
        batch_op.drop_column('first_contact_at')
    with op.batch_alter_table('whatsapp_session', schema=None) as batch_op:
        batch_op.drop_column('reject_calls')
        batch_op.drop_column('ban_code')
        batch_op.drop_column('banned_until')
        batch_op.drop_column('first_contact_daily_cap')
