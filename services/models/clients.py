"""The firm's client directory and cases."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import TenantOwned, enum_col, ts_field


class CaseStatus(str, enum.Enum):
    OPEN = "OPEN"
    PENDING = "PENDING"
    CLOSED = "CLOSED"


class Client(TenantOwned, table=True):
    __table_args__ = (
        sa.Index("ix_client_tenant_phone", "tenant_id", "phone_e164"),
        sa.Index("ix_client_tenant_name", "tenant_id", "name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    phone: str = Field(default="", max_length=64)
    phone_e164: str | None = Field(default=None, max_length=20)
    email: str | None = Field(default=None, max_length=254)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class Case(TenantOwned, table=True):
    __tablename__ = "legal_case"

    id: int | None = Field(default=None, primary_key=True)
    client_id: int | None = Field(default=None, foreign_key="client.id", index=True, ondelete="SET NULL")
    title: str = Field(max_length=200)
    reference: str = Field(default="", max_length=64)
    status: CaseStatus = Field(default=CaseStatus.OPEN, sa_column=enum_col(CaseStatus))
    # A case on legal hold keeps its calls' recordings past the firm's retention period.
    legal_hold: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = ts_field(nullable=False, default_now=True)


class ClientCreate(SQLModel):
    name: str
    phone: str = ""
    email: str | None = None


class ClientPublic(SQLModel):
    id: int
    name: str
    phone: str
    phone_e164: str | None
    email: str | None


class ClientsPublic(SQLModel):
    data: list[ClientPublic]
    count: int


class CasePublic(SQLModel):
    id: int
    client_id: int | None
    title: str
    reference: str
    status: CaseStatus
    # Its calls' recordings are kept past the retention period (services.pbx.retention).
    legal_hold: bool = False
