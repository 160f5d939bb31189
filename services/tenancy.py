"""Tenant scoping: the only way services read tenant tables.

A row of another tenant is indistinguishable from a row that does not exist.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from services.errors import NotFound
from services.models import TenantOwned

T = TypeVar("T", bound=TenantOwned)


def tenant_select(model: type[T], tenant_id: int) -> SelectOfScalar[T]:
    return select(model).where(model.tenant_id == tenant_id)


def get_owned(session: Session, model: type[T], tenant_id: int, obj_id: Any, *, what: str | None = None) -> T:
    """The ``model`` row ``obj_id`` of this tenant, or :class:`NotFound`."""
    if obj_id is None:
        raise NotFound(f"{what or model.__name__.lower()} not found")
    obj = session.exec(tenant_select(model, tenant_id).where(model.id == obj_id)).first()  # type: ignore[attr-defined]
    if obj is None:
        raise NotFound(f"{what or model.__name__.lower()} not found")
    return obj
