"""The call ledger: the PBX's legs of each call, and the per-firm CDR feed (lease, watermark,
health). Filled by :mod:`services.pbx` from the PBX's own records."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import TenantOwned, ts_field


class CallLeg(TenantOwned, table=True):
    """One leg of a call as the PBX recorded it: an agent rung (answered or not), the
    agent who talked, the leg a transfer created. ``unique_id`` is the PBX's own id of
    the leg, so a record read twice (live feed and catch-up) updates the same row."""

    __tablename__ = "call_leg"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "unique_id", name="uq_call_leg_tenant_unique_id"),
        sa.Index("ix_call_leg_tenant_call", "tenant_id", "call_id"),
        sa.Index("ix_call_leg_tenant_agent_started", "tenant_id", "agent_user_id", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    call_id: int = Field(foreign_key="call.id", ondelete="CASCADE")
    unique_id: str = Field(max_length=150)
    # The source's position of the record this leg came from (the watermark's unit).
    position: int = Field(default=0, sa_type=sa.BigInteger)
    extension: str | None = Field(default=None, max_length=16)
    agent_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    started_at: datetime = ts_field(nullable=False)
    answered_at: datetime | None = ts_field()
    ended_at: datetime = ts_field(nullable=False)
    ring_seconds: int = 0
    talk_seconds: int = 0
    # services.pbx.records.LegDisposition values.
    disposition: str = Field(max_length=16)
    transferred_by: str | None = Field(default=None, max_length=16)
    # LegKind: "transfer" when a transfer created the leg, "answer" when it was answered,
    # "ring" when the agent was only rung (set by services.pbx.ledger from the record).
    kind: str = Field(default="ring", max_length=8, sa_column_kwargs={"server_default": "ring"})
    sip_call_id: str | None = Field(default=None, max_length=255)
    created_at: datetime = ts_field(nullable=False, default_now=True)


class PbxFeed(TenantOwned, table=True):
    """One firm's CDR feed: who reconciles it (lease, fenced by ``epoch`` like the WhatsApp
    sessions), how far it has read (``watermark``: the last source position stored), and
    its health as the PBX settings page shows it."""

    __tablename__ = "pbx_feed"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_pbx_feed_tenant"),)

    id: int | None = Field(default=None, primary_key=True)
    source_kind: str = Field(default="", max_length=8)
    watermark: int = Field(default=0, sa_type=sa.BigInteger)
    worker_id: str | None = Field(default=None, max_length=128)
    lease_expires_at: datetime | None = ts_field()
    epoch: int = Field(default=0, sa_type=sa.BigInteger)
    connected: bool = False
    last_record_at: datetime | None = ts_field()
    # The day (the firm's local date, ISO) that records_today counts.
    records_day: str = Field(default="", max_length=10)
    records_today: int = 0
    gaps_filled: int = 0
    last_gap_at: datetime | None = ts_field()
    last_error_code: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=500)
    updated_at: datetime = ts_field(nullable=False, default_now=True)


class LegKind(str, Enum):
    RING = "ring"
    ANSWER = "answer"
    TRANSFER = "transfer"


class CallLegPublic(SQLModel):
    id: int
    unique_id: str
    kind: str
    extension: str | None
    agent_user_id: int | None
    agent_name: str | None = None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    ring_seconds: int
    talk_seconds: int
    disposition: str
    transferred_by: str | None


class PbxFeedHealth(SQLModel):
    source_kind: str
    connected: bool
    last_record_at: datetime | None
    records_today: int
    gaps_filled: int
    last_gap_at: datetime | None
    last_error_code: str | None
    last_error: str | None


class CdrSettingsIn(SQLModel):
    """Where the firm's call records come from (the PBX settings' call-record part).
    ``api_password``: None keeps the stored one, "" removes it; it is stored encrypted and
    never returned (``PbxSettingsPublic.api_password_set`` says whether one is stored)."""

    cdr_source: str = ""
    api_url: str = ""
    api_user: str = ""
    api_password: str | None = None
    realtime_port: int | None = None


class CdrConnectionResult(SQLModel):
    """A "test connection" of the firm's call-record source: ``ok``, a stable ``code``
    (``ok`` or a CdrSourceError code) and a sentence for the settings page."""

    ok: bool
    code: str
    message: str

