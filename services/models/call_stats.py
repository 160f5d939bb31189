"""Call statistics: the hourly roll-ups of sealed hours and the figures of a period."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import TenantOwned, ts_field


class CallHourlyRollup(TenantOwned, table=True):
    """Call figures of one firm, one UTC hour and one agent, summed once the hour is sealed.

    Written only by ``services.call_center.stats`` for hours listed in
    :class:`CallRollupHour`; each column is the same conditional count or sum that
    statistics compute from the calls, so adding rows up gives exactly the raw figures.
    """

    __tablename__ = "call_hourly_rollup"
    __table_args__ = (sa.Index("ix_call_hourly_rollup_tenant_hour", "tenant_id", "hour_start"),)

    id: int | None = Field(default=None, primary_key=True)
    hour_start: datetime = ts_field(nullable=False)
    # Mirrors Call.agent_user_id, SET NULL included: a deleted agent's calls and their
    # rollups both become "no agent", so no recount is needed. NULL agents are why the
    # uniqueness of an hour's rows is kept by CallRollupHour, not a unique key here.
    agent_user_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    total: int = 0
    inbound: int = 0
    answered: int = 0
    missed: int = 0
    answered_inbound: int = 0
    # Answered inbound calls rung at most 20 s, the default service-level threshold.
    answered_inbound_within_20s: int = 0
    ring_seconds_sum: int = Field(default=0, sa_type=sa.BigInteger)
    ring_count: int = 0
    talk_seconds_sum: int = Field(default=0, sa_type=sa.BigInteger)
    talk_count: int = 0
    # The agent's own talk: calls without PBX legs by the call's agent, plus the answered PBX
    # legs (services.pbx.ledger) by the leg's agent, so a transferred call's talk is split.
    agent_talk_seconds_sum: int = Field(default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"})
    agent_talk_count: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class CallRollupHour(TenantOwned, table=True):
    """One row per (firm, UTC hour) whose rows in call_hourly_rollup were computed.

    ``stale`` is set by any change to a call of that hour after it was sealed; the next
    statistics request recomputes the hour. The row exists for hours without calls too,
    so an empty hour is not recounted.
    """

    __tablename__ = "call_rollup_hour"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "hour_start", name="uq_call_rollup_hour_tenant_hour"),)

    id: int | None = Field(default=None, primary_key=True)
    hour_start: datetime = ts_field(nullable=False)
    stale: bool = Field(default=False)


class AgentStats(SQLModel):
    agent_user_id: int | None
    agent_name: str
    total: int
    inbound: int
    outbound: int
    answered: int
    missed: int
    talk_seconds: int
    average_talk_seconds: float | None


class HourBucket(SQLModel):
    hour: int
    total: int
    answered: int
    missed: int


class DayBucket(SQLModel):
    day: str
    total: int
    answered: int
    missed: int


class CallStats(SQLModel):
    date_from: datetime
    date_to: datetime
    timezone: str
    total: int
    inbound: int
    outbound: int
    answered: int
    missed: int
    answer_rate: float | None
    service_level: float | None
    service_level_threshold_seconds: int
    average_speed_of_answer: float | None
    average_talk_time: float | None
    average_handle_time: float | None
    per_agent: list[AgentStats]
    per_hour: list[HourBucket]
    per_day: list[DayBucket]
