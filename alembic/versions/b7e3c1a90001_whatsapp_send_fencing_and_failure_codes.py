"""whatsapp: send in flight (attempt id, started at) and failure codes

Revision ID: b7e3c1a90001
Revises: b7e2c4d10003
Create Date: 2026-11-30 09:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'b7e3c1a90001'
down_revision: Union[str, None] = 'b7e2c4d10003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # MessageStatus gains SENDING and UNCERTAIN: stored as plain strings, no type change.
    with op.batch_alter_table('whatsapp_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('send_attempt_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('sending_started_at', services.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table('whatsapp_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('whatsapp_session', schema=None) as batch_op:
        batch_op.drop_column('error_code')
    with op.batch_alter_table('whatsapp_message', schema=None) as batch_op:
        batch_op.drop_column('sending_started_at')
        batch_op.drop_column('send_attempt_id')
        batch_op.drop_column('error_code')
