"""Live operations: agent presence (current state and its history), the callback queue of
missed calls, and each firm's business hours (issue 13)."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import TenantOwned, enum_col, ts_field


class AgentStatus(str, enum.Enum):
    OFFLINE = "OFFLINE"
    AVAILABLE = "AVAILABLE"
    RINGING = "RINGING"
    ON_CALL = "ON_CALL"
    WRAP_UP = "WRAP_UP"
    AWAY = "AWAY"


class AwayReason(str, enum.Enum):
    BREAK = "BREAK"
    MEETING = "MEETING"
    COURT = "COURT"


class CallbackOutcome(str, enum.Enum):
    REACHED = "REACHED"
    NO_ANSWER = "NO_ANSWER"
    WRONG_NUMBER = "WRONG_NUMBER"


class CallbackChannel(str, enum.Enum):
    CALL = "CALL"
    WHATSAPP = "WHATSAPP"


class AgentState(TenantOwned, table=True):
    """An agent's state now (one row per user, created at the first report)."""

    __tablename__ = "agent_state"
    __table_args__ = (sa.UniqueConstraint("user_id", name="uq_agent_state_user"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    status: AgentStatus = Field(sa_column=enum_col(AgentStatus))
    reason: AwayReason | None = Field(default=None, sa_column=enum_col(AwayReason, nullable=True))
    # The other party of a ringing or connected call (a number as the phone shows it).
    other_party: str = Field(default="", max_length=64)
    # The phone's id of that call (SIP Call-ID), kept through wrap-up so a late event of the
    # finished call is told apart from the next call.
    call_ref: str = Field(default="", max_length=255)
    since: datetime = ts_field(nullable=False, default_now=True)
    wrap_up_until: datetime | None = ts_field()
    # The tab's last heartbeat: none for 30 s and the sweep marks the agent Offline.
    heartbeat_at: datetime | None = ts_field()
    # What the PBX said of the agent's extension at its last reading (services/pbx/
    # registrations.py): None while no reader asks it; False keeps the agent Offline.
    pbx_registered: bool | None = Field(default=None)
    pbx_read_at: datetime | None = ts_field()


class AgentStateChange(TenantOwned, table=True):
    """One stretch of time an agent spent in one state; ``ended_at`` is NULL for the current one."""

    __tablename__ = "agent_state_change"
    __table_args__ = (sa.Index("ix_agent_state_change_tenant_started", "tenant_id", "started_at", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", ondelete="CASCADE")
    status: AgentStatus = Field(sa_column=enum_col(AgentStatus))
    reason: AwayReason | None = Field(default=None, sa_column=enum_col(AwayReason, nullable=True))
    started_at: datetime = ts_field(nullable=False)
    ended_at: datetime | None = ts_field()


class Callback(TenantOwned, table=True):
    """A number that called and nobody answered, until someone calls back and closes it.

    ``open_key`` is the number while the item is open and NULL once closed: the unique key
    keeps one open item per number, so concurrent misses from it merge into one.
    """

    __tablename__ = "callback"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "open_key", name="uq_callback_tenant_open_key"),
        sa.Index("ix_callback_tenant_closed_first", "tenant_id", "closed_at", "first_missed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    open_key: str | None = Field(default=None, max_length=64)
    number: str = Field(max_length=64)
    number_e164: str | None = Field(default=None, max_length=20)
    client_id: int | None = Field(default=None, foreign_key="client.id", ondelete="SET NULL")
    channel: CallbackChannel = Field(sa_column=enum_col(CallbackChannel))
    miss_count: int = Field(default=1)
    first_missed_at: datetime = ts_field(nullable=False)
    last_missed_at: datetime = ts_field(nullable=False)
    # The first miss came outside the firm's business hours.
    outside_hours: bool = Field(default=False)
    claimed_by_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    claimed_at: datetime | None = ts_field()
    first_callback_at: datetime | None = ts_field()
    callback_call_id: int | None = Field(default=None, foreign_key="call.id", ondelete="SET NULL")
    attempts: int = Field(default=0)
    outcome: CallbackOutcome | None = Field(default=None, sa_column=enum_col(CallbackOutcome, nullable=True))
    closed_at: datetime | None = ts_field()
    closed_by_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")


class CallbackMiss(TenantOwned, table=True):
    """One missed contact counted in a callback item; ``miss_key`` makes counting idempotent
    (the legs of one ring-group call, or a miss reported by softphone and PBX, count once)."""

    __tablename__ = "callback_miss"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "miss_key", name="uq_callback_miss_tenant_key"),)

    id: int | None = Field(default=None, primary_key=True)
    callback_id: int = Field(foreign_key="callback.id", index=True, ondelete="CASCADE")
    miss_key: str = Field(max_length=255)
    call_id: int | None = Field(default=None, foreign_key="call.id", ondelete="SET NULL")
    missed_at: datetime = ts_field(nullable=False)


class BusinessHours(TenantOwned, table=True):
    """When the firm answers its phone, and its live-operations targets."""

    __tablename__ = "business_hours"
    __table_args__ = (sa.UniqueConstraint("tenant_id", name="uq_business_hours_tenant"),)

    id: int | None = Field(default=None, primary_key=True)
    # Python weekdays (Monday 0 … Sunday 6) the firm is open; Sunday to Thursday by default.
    days: list[int] = Field(default_factory=lambda: [6, 0, 1, 2, 3], sa_column=sa.Column(sa.JSON, nullable=False))
    opens: str = Field(default="09:00", max_length=5)
    closes: str = Field(default="17:00", max_length=5)
    # ISO dates ("2026-12-02") the firm is closed all day.
    holidays: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    callback_target_minutes: int = Field(default=30)
    wrap_up_seconds: int = Field(default=60)


# --------------------------------------------------------------------------- DTOs


class AgentStatePublic(SQLModel):
    user_id: int
    full_name: str
    extension: str | None = None
    status: AgentStatus
    reason: AwayReason | None = None
    other_party: str = ""
    since: datetime
    wrap_up_until: datetime | None = None


class AgentStateIn(SQLModel):
    """What an agent sets by hand: Available, or Away with a reason."""

    status: AgentStatus
    reason: AwayReason | None = None


class CallbackPublic(SQLModel):
    id: int
    number: str
    number_e164: str | None
    client_id: int | None
    client_name: str | None = None
    channel: CallbackChannel
    miss_count: int
    first_missed_at: datetime
    last_missed_at: datetime
    outside_hours: bool
    claimed_by_user_id: int | None
    claimed_by_name: str | None = None
    claimed_at: datetime | None
    first_callback_at: datetime | None
    callback_call_id: int | None
    attempts: int
    outcome: CallbackOutcome | None
    closed_at: datetime | None
    over_target: bool = False


class CallbackMissIn(SQLModel):
    """A missed contact reported by hand or by an integration (a WhatsApp call, a PBX)."""

    number: str
    channel: CallbackChannel = CallbackChannel.CALL
    missed_at: datetime | None = None


class CallbackClose(SQLModel):
    outcome: CallbackOutcome
