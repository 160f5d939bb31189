"""A case's files: documents, photos and recordings kept on one of the firm's cases.

A case file points at a stored file (:class:`~services.models.Blob`) without copying it: a
file a client sent over WhatsApp and saved to a case is the same blob as the message's. It
says where it came from (``source``: a WhatsApp message, with its direction, number and date;
later an upload) and who saved it when. One file (by SHA-256) is on a case once.

Family: ``CaseFileBase`` (table ``CaseFile``, ``CaseFilePublic``, ``CaseFilesPage``),
``CaseFileSave`` (what a person saves) and ``CaseFileSend`` (sending one to a client).
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import Input, Labelled, TenantOwned, ts_field


class CaseFileSource(str, enum.Enum):
    WHATSAPP = "whatsapp"
    UPLOAD = "upload"


class CaseFileBase(Labelled):
    labels = {"name": "a file name"}

    name: str = Field(max_length=255)
    content_type: str = Field(default="application/octet-stream", max_length=128)


class CaseFile(CaseFileBase, TenantOwned, table=True):
    __tablename__ = "case_file"
    __table_args__ = (
        # Saving the same file to the same case again finds this row (services.case_files).
        sa.UniqueConstraint("tenant_id", "case_id", "sha256", name="uq_case_file_tenant_case_sha256"),
        sa.Index("ix_case_file_tenant_case", "tenant_id", "case_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="legal_case.id", ondelete="CASCADE")
    # RESTRICT: a blob a case keeps is never deleted under it (services.blobs refuses first).
    blob_id: int = Field(foreign_key="blob.id", index=True, ondelete="RESTRICT")
    size_bytes: int = Field(default=0, sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    source: str = Field(max_length=16)  # CaseFileSource value
    # The WhatsApp message it was saved from, as it was: kept when the message row goes.
    source_message_id: int | None = Field(default=None, foreign_key="whatsapp_message.id", index=True, ondelete="SET NULL")
    source_direction: str | None = Field(default=None, max_length=8)
    source_number: str | None = Field(default=None, max_length=20)
    source_at: datetime | None = ts_field()
    saved_by_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    saved_at: datetime = ts_field(nullable=False, default_now=True)


class CaseFilePublic(CaseFileBase):
    id: int
    case_id: int
    case_title: str = ""
    size_bytes: int
    sha256: str
    source: CaseFileSource
    source_message_id: int | None = None
    source_direction: str | None = None
    source_number: str | None = None
    source_at: datetime | None = None
    saved_by_user_id: int | None = None
    saved_by_name: str | None = None
    saved_at: datetime


class CaseFileSaved(CaseFilePublic):
    """A save's answer: the case file, and whether this save made it (False: it was there)."""

    created: bool


class CaseFilesPage(SQLModel):
    data: list[CaseFilePublic]
    count: int


class CaseFileSave(Input):
    labels = {"message_id": "a message"}

    message_id: int = Field(ge=1, le=2**31 - 1)


class CaseFileSend(Input):
    labels = {"caption": "a caption", "to": "a phone number"}

    to: str | None = Field(default=None, max_length=40)
    client_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    caption: str = Field(default="", max_length=4096)
