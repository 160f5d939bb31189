"""Tenant scoping: the only place a query says which firm's rows it may see.

A row of another tenant is indistinguishable from a row that does not exist. Services
never write ``X.tenant_id == ...`` themselves (``tests/test_architecture.py`` fails if
they do); they build every condition with the helpers here:

- :func:`tenant_select` / :func:`get_owned` for ORM reads of one model;
- :func:`owned_by` for the main table of a Core or multi-entity statement;
- :func:`owned_join` for a joined table (a join that ignored the tenant could pull in
  another firm's row whose id happens to match);
- :func:`same_tenant` for a join between two tenant tables on the tenant itself.
"""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import Session, select
from sqlmodel.sql.expression import SelectOfScalar

from services.errors import NotFound
from services.models import TenantOwned

T = TypeVar("T", bound=TenantOwned)


def _tenant_column(entity: Any) -> Any:
    # A Core table or alias keeps its columns under ``.c``; a model or an aliased model has them as attributes.
    columns = getattr(entity, "c", None)
    return columns.tenant_id if columns is not None else entity.tenant_id


def owned_by(entity: Any, tenant_id: int) -> sa.ColumnElement[bool]:
    """The condition "this row of ``entity`` (model, aliased model or Core table) belongs to the tenant"."""
    return _tenant_column(entity) == tenant_id


def owned_join(entity: Any, on: sa.ColumnElement[bool], tenant_id: int) -> sa.ColumnElement[bool]:
    """A join condition ``on`` that also keeps the joined ``entity`` row inside the tenant."""
    return sa.and_(on, owned_by(entity, tenant_id))


def same_tenant(left: Any, right: Any) -> sa.ColumnElement[bool]:
    """Two tenant tables' rows belong to the same firm (for joins that carry no tenant id value)."""
    return _tenant_column(left) == _tenant_column(right)


def tenant_select(model: type[T], tenant_id: int) -> SelectOfScalar[T]:
    return select(model).where(owned_by(model, tenant_id))


def get_owned(session: Session, model: type[T], tenant_id: int, obj_id: Any, *, what: str | None = None) -> T:
    """The ``model`` row ``obj_id`` of this tenant, or :class:`NotFound`."""
    if obj_id is None:
        raise NotFound(f"{what or model.__name__.lower()} not found")
    obj = session.exec(tenant_select(model, tenant_id).where(model.id == obj_id)).first()  # type: ignore[attr-defined]
    if obj is None:
        raise NotFound(f"{what or model.__name__.lower()} not found")
    return obj
