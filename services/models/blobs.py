"""Stored files: one row per file kept in :mod:`services.storage` (a call recording, a WhatsApp
file, later a case document). Rows that have a file point at their ``Blob``; only
:mod:`services.blobs` creates and deletes them, together with the file."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import sqlalchemy as sa
from sqlmodel import Field

from services.models.base import TenantOwned, ts_field


class BlobKind(str, Enum):
    RECORDING = "recording"
    WHATSAPP_MEDIA = "whatsapp_media"
    CASE_DOCUMENT = "case_document"


class Blob(TenantOwned, table=True):
    """A file in the store: its key there, what it is, its size and digest, and the id of the
    key it is sealed under (services.security; "" for a file stored before this table existed,
    until the next key rotation)."""

    __tablename__ = "blob"
    __table_args__ = (sa.UniqueConstraint("storage_key", name="uq_blob_storage_key"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # BlobKind value
    storage_key: str = Field(max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=128)
    size_bytes: int = Field(default=0, sa_type=sa.BigInteger)
    sha256: str = Field(default="", max_length=64)
    key_id: str = Field(default="", max_length=32)
    created_at: datetime = ts_field(nullable=False, default_now=True)
