"""call number search: each firm's distinct numbers by suffix (call_number), kept by triggers

Builds the dictionary of the calls already there. The triggers and the fill statement are the
ones the model creates with the table (services.models.call_numbers).

Revision ID: ns02a1b2010n
Revises: lv02a1b20009
Create Date: 2026-11-30 20:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from services.models.call_numbers import MAX_NUMBER, create_statements, drop_statements, fill_statement

revision: str = 'ns02a1b2010n'
down_revision: Union[str, None] = 'lv02a1b20009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    text = sa.String(MAX_NUMBER).with_variant(sa.String(MAX_NUMBER, collation="C"), "postgresql")
    op.create_table(
        'call_number',
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('suffix', text, nullable=False),
        sa.Column('number', text, nullable=False),
        sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('tenant_id', 'suffix', 'number'),
        sqlite_with_rowid=False,
    )
    dialect = op.get_bind().dialect.name
    op.execute(fill_statement(dialect))
    for statement in create_statements(dialect):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_statements(op.get_bind().dialect.name):
        op.execute(statement)
    op.drop_table('call_number')
