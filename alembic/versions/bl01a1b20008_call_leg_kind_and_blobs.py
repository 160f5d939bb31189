"""call leg kind (ring / answer / transfer), backfilled from the legs already stored

Revision ID: bl01a1b20008
Revises: me01a1b20007
Create Date: 2026-11-30 14:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = 'bl01a1b20008'
down_revision: Union[str, None] = 'me01a1b20007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('call_leg', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), server_default='ring', nullable=False))
    # The same rule as services.pbx.ledger.leg_kind.
    op.execute(
        "UPDATE call_leg SET kind = CASE "
        "WHEN transferred_by IS NOT NULL AND transferred_by <> '' THEN 'transfer' "
        "WHEN answered_at IS NOT NULL THEN 'answer' ELSE 'ring' END"
    )


def downgrade() -> None:
    with op.batch_alter_table('call_leg', schema=None) as batch_op:
        batch_op.drop_column('kind')
