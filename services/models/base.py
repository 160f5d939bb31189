"""What every table is built from: UTC timestamps, enum columns, the tenant key.

Timestamps are stored in UTC. SQLite keeps no zone, so :class:`UTCDateTime` stores
naive UTC and hands back aware UTC datetimes on every backend.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """A DateTime that is always UTC-aware in Python and naive UTC in the database."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where UTC was expected")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def ts_field(*, nullable: bool = True, index: bool = False, default_now: bool = False) -> Any:
    kwargs: dict[str, Any] = {}
    if default_now:
        kwargs["default_factory"] = utcnow
    else:
        kwargs["default"] = None
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index), **kwargs)


def enum_col(enum_cls: type[enum.Enum], *, index: bool = False, nullable: bool = False) -> Any:
    # Stored as plain strings (no native DB enum) so adding a value needs no type migration.
    return sa.Column(
        sa.Enum(enum_cls, native_enum=False, length=16, validate_strings=True),
        nullable=nullable,
        index=index,
    )


class TenantOwned(SQLModel):
    tenant_id: int = Field(foreign_key="tenant.id", index=True, nullable=False, ondelete="CASCADE")
