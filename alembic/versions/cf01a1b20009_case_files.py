"""case files: a file kept on a case points at its blob (no copy), with where it came from
(a WhatsApp message: direction, number, date) and who saved it; one file (SHA-256) per case once

Revision ID: cf01a1b20009
Revises: md02a1b20008
Create Date: 2026-11-30 16:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'cf01a1b20009'
down_revision: Union[str, None] = 'md02a1b20008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('case_file',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('blob_id', sa.Integer(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source_message_id', sa.Integer(), nullable=True),
    sa.Column('source_direction', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('source_number', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('source_at', services.models.UTCDateTime(), nullable=True),
    sa.Column('saved_by_user_id', sa.Integer(), nullable=True),
    sa.Column('saved_at', services.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['blob_id'], ['blob.id'], ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['case_id'], ['legal_case.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['saved_by_user_id'], ['user.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['source_message_id'], ['whatsapp_message.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'case_id', 'sha256', name='uq_case_file_tenant_case_sha256')
    )
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_file_blob_id'), ['blob_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_file_source_message_id'), ['source_message_id'], unique=False)
        batch_op.create_index('ix_case_file_tenant_case', ['tenant_id', 'case_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_file_tenant_id'), ['tenant_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('case_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_file_tenant_id'))
        batch_op.drop_index('ix_case_file_tenant_case')
        batch_op.drop_index(batch_op.f('ix_case_file_source_message_id'))
        batch_op.drop_index(batch_op.f('ix_case_file_blob_id'))

    op.drop_table('case_file')
