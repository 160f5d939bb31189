"""Call statistics: the hourly rollups (kept by database triggers) and the figures of a period."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Field, SQLModel

from services.models.base import UTCDateTime


# The figures each row of call_stats_hour sums, in order. The first twelve are those of
# services.call_center.stats (its module docstring defines them); ``*_before_NN`` count the
# calls that started in the first NN minutes of the hour, so an hour can be split where a
# zone with a half- or quarter-hour offset starts its local hour.
CALL_FIGURES = (
    "total", "inbound", "answered", "missed", "answered_inbound", "answered_inbound_within_20s",
    "ring_seconds_sum", "ring_count", "talk_seconds_sum", "talk_count", "agent_talk_seconds_sum", "agent_talk_count",
)
SPLIT_MINUTES = (15, 30, 45)
SPLIT_FIGURES = tuple(f"{name}_before_{m}" for m in SPLIT_MINUTES for name in ("total", "answered", "missed"))
ROLLUP_FIGURES = CALL_FIGURES + SPLIT_FIGURES
# The service-level threshold the rollups count for (answered_inbound_within_20s).
ROLLUP_SERVICE_LEVEL_S = 20
# One (firm, hour or day, agent) is spread over several rows on PostgreSQL (``shard``), so
# concurrent transactions logging calls of one agent update different rows instead of
# queueing for one row's lock until the first commits; readers sum over the shards (every
# read already sums rows). Each trigger adds to a row of the key no other transaction holds,
# else to a new one (services.models.call_stats_triggers.shard_sql). Until sh02a1b2001t it
# was the connection's, one of this many (mod(pg_backend_pid(), 8)).
ROLLUP_SHARDS = 8
_BIG = frozenset({"ring_seconds_sum", "talk_seconds_sum", "agent_talk_seconds_sum"})


def _figure_column(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger if name in _BIG else sa.Integer, nullable=False, server_default="0")


class CallStatsHour(SQLModel, table=True):
    """Call figures of one firm, one UTC hour and one agent, kept by database triggers.

    Every insert, change or deletion of a ``call`` or ``call_leg`` row adds its difference
    here in the same transaction (:func:`rollup_trigger_ddl`), so the rows always equal the
    figures computed from the calls themselves. ``agent_key`` is the call's agent, 0 for none
    (a primary key needs a value); a leg's talk goes to the leg's agent, in the hour its
    call started. One (firm, hour, agent) may have several rows, told apart by ``shard``
    (PostgreSQL: as many as transactions ever wrote it at the same moment; SQLite, one
    writer: always 0): its figures are their sum.
    """

    __tablename__ = "call_stats_hour"
    # Clustered by its key on SQLite: a period's rows are read in one sweep. On PostgreSQL every
    # change of a call rewrites its rows (MVCC): pages kept 30 % free let the new version stay
    # on the same page (a HOT update, no index change, no row scattered across the table).
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}}

    tenant_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    )
    hour_start: datetime = Field(sa_column=sa.Column(UTCDateTime(), primary_key=True))
    agent_key: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    shard: int = Field(default=0, sa_column=sa.Column(sa.SmallInteger, primary_key=True, autoincrement=False, server_default="0"))


class CallStatsDay(SQLModel, table=True):
    """The same figures as :class:`CallStatsHour` (without the hour's split columns) per firm,
    UTC day and agent, kept by the same triggers: a month's per-agent figures read 30 rows
    per agent instead of 720."""

    __tablename__ = "call_stats_day"
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}}

    tenant_id: int = Field(
        sa_column=sa.Column(sa.Integer, sa.ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    )
    day_start: datetime = Field(sa_column=sa.Column(UTCDateTime(), primary_key=True))
    agent_key: int = Field(sa_column=sa.Column(sa.Integer, primary_key=True, autoincrement=False))
    shard: int = Field(default=0, sa_column=sa.Column(sa.SmallInteger, primary_key=True, autoincrement=False, server_default="0"))


for _name in ROLLUP_FIGURES:
    CallStatsHour.__table__.append_column(_figure_column(_name))
for _name in CALL_FIGURES:
    CallStatsDay.__table__.append_column(_figure_column(_name))


# The response of get_stats: plain pydantic models, not SQLModel ones (no table behind them). A
# request builds some 30 of them (24 hours, the days, the agents); SQLModel's construction costs
# ~4 µs each, pydantic's validation of the whole response from dicts ~15 µs in all.
class AgentStats(BaseModel):
    agent_user_id: int | None
    agent_name: str
    total: int
    inbound: int
    outbound: int
    answered: int
    missed: int
    talk_seconds: int
    average_talk_seconds: float | None


class HourBucket(BaseModel):
    hour: int
    total: int
    answered: int
    missed: int


class DayBucket(BaseModel):
    day: str
    total: int
    answered: int
    missed: int


class CallStats(BaseModel):
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
