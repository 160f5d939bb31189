"""The live-update log of the embedded (SQLite) deployment: one row per published change.

Only the SQLite transport of :mod:`services.live_bus` writes and reads it (Redis and
PostgreSQL carry changes without a table). A row names what changed, never any data; rows
older than a minute are pruned by the readers.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from services.models.base import ts_field


class LiveChange(SQLModel, table=True):
    __tablename__ = "live_change"

    id: int | None = Field(default=None, primary_key=True)
    # The firm the change is about (data of the message, not an ownership: no tenant scoping).
    firm: int = Field(sa_column=sa.Column(sa.Integer, nullable=False))
    topic: str = Field(max_length=16)
    ref: str | None = Field(default=None, max_length=64)
    created_at: datetime = ts_field(nullable=False, index=True, default_now=True)
