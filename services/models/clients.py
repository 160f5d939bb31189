"""The firm's client directory and cases: one family each (Base / Create / table / Public)."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import Input, Labelled, TenantOwned, enum_col, ts_field


class CaseStatus(str, enum.Enum):
    OPEN = "OPEN"
    PENDING = "PENDING"
    CLOSED = "CLOSED"


class ClientBase(Labelled):
    labels = {"name": "a client name", "phone": "a phone number", "email": "an email address"}

    name: str = Field(max_length=200)
    # As entered; the E.164 form is derived by the service.
    phone: str = Field(default="", max_length=64)
    email: str | None = Field(default=None, max_length=254)


class Client(ClientBase, TenantOwned, table=True):
    __table_args__ = (
        sa.Index("ix_client_tenant_phone", "tenant_id", "phone_e164"),
        sa.Index("ix_client_tenant_name", "tenant_id", "name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    phone_e164: str | None = Field(default=None, max_length=20)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class CaseBase(Labelled):
    labels = {"title": "a case title", "reference": "a reference"}

    title: str = Field(max_length=200)
    reference: str = Field(default="", max_length=64)


class Case(CaseBase, TenantOwned, table=True):
    __tablename__ = "legal_case"

    id: int | None = Field(default=None, primary_key=True)
    client_id: int | None = Field(default=None, foreign_key="client.id", index=True, ondelete="SET NULL")
    status: CaseStatus = Field(default=CaseStatus.OPEN, sa_column=enum_col(CaseStatus))
    # A case on legal hold keeps its calls' recordings past the firm's retention period.
    legal_hold: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    created_at: datetime = ts_field(nullable=False, default_now=True)


class ClientCreate(ClientBase, Input):
    pass


class ClientPublic(ClientBase):
    id: int
    phone_e164: str | None


class ClientsPage(SQLModel):
    """A page of the client directory (offset paging): the rows and how many match in all."""

    data: list[ClientPublic]
    count: int


class CasePublic(CaseBase):
    id: int
    client_id: int | None
    status: CaseStatus
    # Its calls' recordings are kept past the retention period (services.pbx.retention).
    legal_hold: bool = False
