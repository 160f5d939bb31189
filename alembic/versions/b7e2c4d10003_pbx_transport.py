"""pbx settings transport (ws for a loopback dev PBX, wss otherwise)

Revision ID: b7e2c4d10003
Revises: a1d17e0e0002
Create Date: 2026-11-30 09:30:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = 'b7e2c4d10003'
down_revision: Union[str, None] = 'a1d17e0e0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('pbx_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('transport', sqlmodel.sql.sqltypes.AutoString(length=3), server_default='wss', nullable=False))
    # The dev PBX on this machine serves ws:// on 8088 next to its self-signed wss:// on 8089;
    # a browser reaches ws:// on loopback without first accepting a certificate.
    op.execute(
        "UPDATE pbx_settings SET transport = 'ws', wss_port = 8088 "
        "WHERE host IN ('127.0.0.1', 'localhost', '::1') AND wss_port = 8089"
    )


def downgrade() -> None:
    op.execute("UPDATE pbx_settings SET wss_port = 8089 WHERE transport = 'ws' AND wss_port = 8088")
    with op.batch_alter_table('pbx_settings', schema=None) as batch_op:
        batch_op.drop_column('transport')
