"""audit event

Revision ID: a1d17e0e0002
Revises: 6521cea906ff
Create Date: 2026-11-30 09:20:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'a1d17e0e0002'
down_revision: Union[str, None] = '6521cea906ff'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('audit_event',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('object_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('object_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', services.models.UTCDateTime(), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_tenant_at', ['tenant_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_tenant_id'), ['tenant_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_tenant_id'))
        batch_op.drop_index('ix_audit_event_tenant_at')
    op.drop_table('audit_event')
