"""call leg kind (ring / answer / transfer); blobs: one row per stored file, pointed at by
call recordings and WhatsApp messages (their storage key, digest, size and type move there)

Revision ID: bl01a1b20008
Revises: pu01a0b20007
Create Date: 2026-11-30 14:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import services.models


revision: str = 'bl01a1b20008'
down_revision: Union[str, None] = 'pu01a0b20007'
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

    op.create_table('blob',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('storage_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', services.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('storage_key', name='uq_blob_storage_key')
    )
    with op.batch_alter_table('blob', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blob_tenant_id'), ['tenant_id'], unique=False)

    for table in ('call_recording', 'whatsapp_message'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('blob_id', sa.Integer(), nullable=True))
            batch_op.create_index(batch_op.f(f'ix_{table}_blob_id'), ['blob_id'], unique=False)
            batch_op.create_foreign_key(f'fk_{table}_blob_id_blob', 'blob', ['blob_id'], ['id'], ondelete='SET NULL')

    # A blob for each stored file (its sealing key id is not known here: "" until the next
    # key rotation writes it), then each row points at its blob.
    op.execute(
        "INSERT INTO blob (tenant_id, kind, storage_key, content_type, size_bytes, sha256, key_id, created_at) "
        "SELECT tenant_id, 'recording', storage_key, content_type, COALESCE(size_bytes, 0), COALESCE(sha256, ''), '', created_at "
        "FROM call_recording WHERE storage_key IS NOT NULL"
    )
    op.execute(
        "INSERT INTO blob (tenant_id, kind, storage_key, content_type, size_bytes, sha256, key_id, created_at) "
        "SELECT tenant_id, 'whatsapp_media', media_key, COALESCE(media_mime, 'application/octet-stream'), COALESCE(media_size, 0), "
        "COALESCE(media_sha256, ''), '', created_at FROM whatsapp_message WHERE media_key IS NOT NULL"
    )
    op.execute(
        "UPDATE call_recording SET blob_id = (SELECT blob.id FROM blob WHERE blob.storage_key = call_recording.storage_key) "
        "WHERE storage_key IS NOT NULL"
    )
    op.execute(
        "UPDATE whatsapp_message SET blob_id = (SELECT blob.id FROM blob WHERE blob.storage_key = whatsapp_message.media_key) "
        "WHERE media_key IS NOT NULL"
    )
    with op.batch_alter_table('call_recording', schema=None) as batch_op:
        for column in ('sha256', 'storage_key', 'content_type', 'size_bytes'):
            batch_op.drop_column(column)
    with op.batch_alter_table('whatsapp_message', schema=None) as batch_op:
        for column in ('media_sha256', 'media_key'):
            batch_op.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table('call_recording', schema=None) as batch_op:
        batch_op.add_column(sa.Column('size_bytes', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=64), server_default='audio/wav', nullable=False))
        batch_op.add_column(sa.Column('storage_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table('whatsapp_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('media_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    for column, source in (('storage_key', 'storage_key'), ('size_bytes', 'size_bytes'), ('sha256', 'sha256'), ('content_type', 'content_type')):
        op.execute(
            f"UPDATE call_recording SET {column} = (SELECT blob.{source} FROM blob WHERE blob.id = call_recording.blob_id) "
            "WHERE blob_id IS NOT NULL"
        )
    for column, source in (('media_key', 'storage_key'), ('media_sha256', 'sha256')):
        op.execute(
            f"UPDATE whatsapp_message SET {column} = (SELECT blob.{source} FROM blob WHERE blob.id = whatsapp_message.blob_id) "
            "WHERE blob_id IS NOT NULL"
        )
    for table in ('whatsapp_message', 'call_recording'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_blob_id_blob', type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_{table}_blob_id'))
            batch_op.drop_column('blob_id')
    with op.batch_alter_table('blob', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_blob_tenant_id'))
    op.drop_table('blob')
    with op.batch_alter_table('call_leg', schema=None) as batch_op:
        batch_op.drop_column('kind')
