"""What every table and DTO is built from: UTC timestamps, enum columns, the tenant key,
and the length limits of a model family.

Timestamps are stored in UTC. SQLite keeps no zone, so :class:`UTCDateTime` stores
naive UTC and hands back aware UTC datetimes on every backend.

Length limits are declared once, as ``Field(max_length=...)`` on a family's ``XBase``:
the table inherits them as its column sizes, the public DTO and the request DTOs inherit
them as their schema (``maxLength`` in the API's OpenAPI), and a request DTO built on
:class:`Input` refuses a longer value with :class:`~services.errors.Invalid` (field and
reason), whether the API or the dashboard built it. A service that takes a value outside a
DTO checks it with :func:`check_length`, which reads the same declaration and says the same
sentence, :func:`too_long`.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any, ClassVar

import annotated_types
import sqlalchemy as sa
from pydantic import ValidationError, ValidatorFunctionWrapHandler, model_validator
from sqlmodel import Field, SQLModel

from services.errors import Invalid


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


class Labelled(SQLModel):
    """A family's base: ``labels`` names its fields in the sentences a refusal says."""

    # field -> how a sentence names it ("a client name"); unlisted fields are "the <field>".
    labels: ClassVar[dict[str, str]] = {}


def max_length(model: type[SQLModel], field: str) -> int:
    """The ``max_length`` declared on ``model``'s ``field`` (its family's base declares it)."""
    for meta in model.model_fields[field].metadata:
        if isinstance(meta, annotated_types.MaxLen):
            return meta.max_length
    raise LookupError(f"{model.__name__}.{field} declares no max_length")


def too_long(model: type[SQLModel], field: str) -> str:
    """The one sentence for a value longer than ``model``'s limit on ``field``."""
    labels: dict[str, str] = getattr(model, "labels", {})
    label = labels.get(field) or f"the {field.replace('_', ' ')}"
    return f"{label} is at most {max_length(model, field)} characters"


def check_length(model: type[SQLModel], field: str, value: str | None) -> str | None:
    """``value`` unchanged, or :class:`Invalid` when it is longer than ``model`` allows on ``field``."""
    if value is not None and len(value) > max_length(model, field):
        raise Invalid(field, too_long(model, field))
    return value


class Input(Labelled):
    """A request DTO: a value past its family's declared length is :class:`Invalid`.

    Raised when the DTO is built, by the API (FastAPI validates the body into it; the error
    handler answers 422 with the field) or by a page of the dashboard (which shows the reason
    under the field), with the sentence :func:`check_length` says. Any other bad input stays
    pydantic's own validation error.
    """

    @model_validator(mode="wrap")
    @classmethod
    def _too_long_is_invalid(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = first.get("loc") or ()
            if first.get("type") == "string_too_long" and len(loc) == 1 and loc[0] in cls.model_fields:
                raise Invalid(str(loc[0]), too_long(cls, str(loc[0]))) from None
            raise
