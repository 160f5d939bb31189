"""Firms: creation with a unique slug, lookup, and the lock that serialises owner changes."""

from __future__ import annotations

import re
import unicodedata
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import Session, select

from services import phones
from services.errors import Invalid, NotFound
from services.models import Tenant, TenantBase, TenantPublic
from services.models.base import check_length
from services.names import clean_name


def _slug_base(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60].strip("-")
    # Names written only in Arabic script have no ASCII letters left.
    return slug or "firm"


def _unique_slug(session: Session, name: str) -> str:
    base = _slug_base(name)
    taken = set(session.exec(select(Tenant.slug).where(Tenant.slug.startswith(base))).all())  # type: ignore[attr-defined]
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _tenant_public(tenant: Tenant) -> TenantPublic:
    return TenantPublic(id=tenant.id, name=tenant.name, slug=tenant.slug, region=tenant.region, timezone=tenant.timezone)


def create_tenant(*, session: Session, name: str, region: str = "SA", timezone: str = "Asia/Riyadh") -> TenantPublic:
    """A new firm; its slug is derived from the name and made unique."""
    name = clean_name(name)
    if not name:
        raise Invalid("name", "a firm name is required")
    check_length(TenantBase, "name", name)
    region = (region or "").strip().upper()
    if not phones.is_valid_region(region):
        raise Invalid("region", f"'{region}' is not a supported phone region (ISO 3166 code such as SA)")
    tz = (timezone or "").strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid("timezone", f"'{tz}' is not a known time zone (such as Asia/Riyadh)") from None
    tenant = Tenant(name=name, slug=_unique_slug(session, name), region=region, timezone=tz)
    session.add(tenant)
    session.flush()
    return _tenant_public(tenant)


def _tenant_row(session: Session, tenant_id: int) -> Tenant:
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant


def get_tenant(*, session: Session, tenant_id: int) -> TenantPublic:
    """The firm ``tenant_id``, or :class:`NotFound`."""
    return _tenant_public(_tenant_row(session, tenant_id))


def _lock_tenant(session: Session, tenant_id: int) -> None:
    # A no-op write on the firm's row: PostgreSQL locks the row, SQLite takes its one
    # write lock. Two changes to the firm's owners then run one after the other, so two
    # owners demoting each other at once cannot leave the firm without an owner.
    session.execute(
        sa.update(Tenant).where(Tenant.id == tenant_id).values(slug=Tenant.slug).execution_options(synchronize_session=False)
    )
