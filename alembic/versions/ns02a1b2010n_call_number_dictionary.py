"""call number search: each firm's distinct numbers by suffix (call_number), kept by triggers;
on PostgreSQL ix_call_tenant_remote INCLUDEs the id (the calls of the numbers found are read
from the index alone, as SQLite does with its rowid)

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
    if dialect == "postgresql":
        _remote_index(include_id=True)


def _remote_index(*, include_id: bool) -> None:
    op.drop_index('ix_call_tenant_remote', table_name='call')
    op.create_index(
        'ix_call_tenant_remote', 'call', ['tenant_id', 'remote_e164', 'remote_number', 'started_at'],
        unique=False, postgresql_include=['id'] if include_id else [],
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        _remote_index(include_id=False)
    for statement in drop_statements(dialect):
        op.execute(statement)
    op.drop_table('call_number')
