"""The firm's client directory and cases.

Numbers are stored as entered and in E.164 (normalised with the firm's region), so a
call or a WhatsApp message from any spelling of a number finds its client through
the ``ix_client_tenant_phone`` index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, func, select

from services import phones
from services.accounts import normalise_email
from services.errors import Invalid, NotFound
from services.models import Case, CaseBase, CasePublic, Client, ClientCreate, ClientPublic, ClientsPage, Tenant
from services.models.base import check_length
from services.names import clean_name
from services.tenancy import get_owned, owned_by, tenant_select

MAX_PAGE_SIZE = 500


def _client_public(client: Client) -> ClientPublic:
    return ClientPublic(
        id=client.id, name=client.name, phone=client.phone, phone_e164=client.phone_e164, email=client.email
    )


def _case_public(case: Case) -> CasePublic:
    return CasePublic(
        id=case.id, client_id=case.client_id, title=case.title, reference=case.reference, status=case.status, legal_hold=case.legal_hold
    )


def _tenant_region(session: Session, tenant_id: int) -> str:
    tenant = session.get(Tenant, tenant_id) if tenant_id is not None else None
    if tenant is None:
        raise NotFound("tenant not found")
    return tenant.region


def create_client(*, session: Session, tenant_id: int, data: ClientCreate) -> ClientPublic:
    """A new client; the phone (optional) is normalised with the firm's region."""
    # Lengths were checked when ``data`` was built (ClientBase declares them).
    name = clean_name(data.name)
    if not name:
        raise Invalid("name", "a client name is required")
    region = _tenant_region(session, tenant_id)
    phone = (data.phone or "").strip()
    phone_e164 = phones.normalise(phone, region, field="phone") if phone else None
    email = normalise_email(data.email) if (data.email or "").strip() else None
    client = Client(tenant_id=tenant_id, name=name, phone=phone, phone_e164=phone_e164, email=email)
    session.add(client)
    session.flush()
    return _client_public(client)


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_condition(search: str, region: str) -> sa.ColumnElement[bool]:
    conditions: list[sa.ColumnElement[bool]] = [Client.name.ilike(f"%{_like_escape(search)}%", escape="\\")]  # type: ignore[attr-defined]
    digits = phones.digits_of(search)
    # Only a search that is mostly a number is a number search: "Office 2" is a name.
    if len(digits) >= 3 and len(digits) * 2 >= len(search.replace(" ", "")):
        conditions.append(Client.phone_e164.contains(digits))  # type: ignore[union-attr]
        if digits.startswith("0"):
            # "0501..." is dialled nationally; stored numbers carry the country code instead of the 0.
            conditions.append(Client.phone_e164.contains(digits.lstrip("0")))  # type: ignore[union-attr]
        e164 = phones.try_normalise(search, region)
        if e164:
            conditions.append(Client.phone_e164 == e164)
    return sa.or_(*conditions)


def list_clients(
    *, session: Session, tenant_id: int, search: str | None = None, limit: int = 50, offset: int = 0
) -> ClientsPage:
    """A page of the firm's clients by name; ``search`` matches a name part or a number's digits."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise Invalid("limit", f"limit must be between 1 and {MAX_PAGE_SIZE}")
    if offset < 0:
        raise Invalid("offset", "offset cannot be negative")
    query = tenant_select(Client, tenant_id)
    counter = select(func.count()).select_from(Client).where(owned_by(Client, tenant_id))
    text = (search or "").strip()
    if text:
        condition = _search_condition(text, _tenant_region(session, tenant_id))
        query = query.where(condition)
        counter = counter.where(condition)
    rows = session.exec(query.order_by(Client.name, Client.id).offset(offset).limit(limit)).all()
    count = session.exec(counter).one()
    return ClientsPage(data=[_client_public(c) for c in rows], count=count)


def get_client(*, session: Session, tenant_id: int, client_id: int) -> ClientPublic:
    """One client of the firm, or :class:`NotFound` (another firm's client included)."""
    return _client_public(get_owned(session, Client, tenant_id, client_id, what="client"))


def _oldest_clients(tenant_id: int, numbers: Iterable[str]) -> sa.ColumnElement[bool]:
    # Several clients may share a number (a family, an office line): the oldest one wins,
    # the same for a call, a typed number and a batch of received messages. The inner
    # query runs on ``ix_client_tenant_phone``, the outer one on the primary key.
    oldest = (
        select(func.min(Client.id))
        .where(owned_by(Client, tenant_id), Client.phone_e164.in_(sorted(set(numbers))))  # type: ignore[union-attr]
        .group_by(Client.phone_e164)
    )
    return sa.and_(owned_by(Client, tenant_id), Client.id.in_(oldest))  # type: ignore[union-attr]


def match_numbers(*, session: Session, tenant_id: int, numbers: Iterable[str]) -> dict[str, int]:
    """E.164 number → the id of the firm's oldest client with it (numbers of no client are absent).

    One query however many numbers (a batch of received messages).
    """
    wanted = {n for n in numbers if n}
    if not wanted:
        return {}
    rows = session.execute(select(Client.phone_e164, Client.id).where(_oldest_clients(tenant_id, wanted))).all()
    return {phone: client_id for phone, client_id in rows}


def oldest_client(tenant_id: Any, e164: Any) -> sa.Select[Any]:
    """The id and name of the firm's oldest client with the number ``e164`` (no row when
    none): the rule of :func:`_oldest_clients` for one number, read from
    ``ix_client_tenant_phone``. Takes values or bound parameters, so that a statement built
    once can hold it (log_call matches the client with it, or inside its INSERT)."""
    return (
        sa.select(Client.id, Client.name)
        .where(owned_by(Client, tenant_id), Client.phone_e164 == e164)
        .order_by(Client.id)
        .limit(1)
    )


# Built once: match_number runs for every typed number and call, and a statement with bound
# parameters is compiled once instead of once per call.
_MATCH_ONE = oldest_client(sa.bindparam("tenant_id"), sa.bindparam("e164")).with_only_columns(
    Client.id, Client.name, Client.phone, Client.phone_e164, Client.email
)


def match_number(*, session: Session, tenant_id: int, e164: str | None) -> ClientPublic | None:
    """The firm's client with this E.164 number (the oldest if several share it), else None.

    Called for every typed number: one query.
    """
    if not e164:
        return None
    row = session.connection().execute(_MATCH_ONE, {"tenant_id": tenant_id, "e164": e164}).one_or_none()
    return ClientPublic(id=row.id, name=row.name, phone=row.phone, phone_e164=row.phone_e164, email=row.email) if row else None


def list_cases(*, session: Session, tenant_id: int, client_id: int | None = None) -> list[CasePublic]:
    """The firm's cases, newest first; only one client's when ``client_id`` is given."""
    query = tenant_select(Case, tenant_id)
    if client_id is not None:
        get_owned(session, Client, tenant_id, client_id, what="client")
        query = query.where(Case.client_id == client_id)
    rows = session.exec(query.order_by(Case.id.desc())).all()  # type: ignore[union-attr]
    return [_case_public(c) for c in rows]


def create_case(*, session: Session, tenant_id: int, client_id: int, title: str, reference: str = "") -> CasePublic:
    """A new open case of one of the firm's clients."""
    title = clean_name(title)
    if not title:
        raise Invalid("title", "a case title is required")
    check_length(CaseBase, "title", title)
    reference = check_length(CaseBase, "reference", (reference or "").strip()) or ""
    client = get_owned(session, Client, tenant_id, client_id, what="client")
    case = Case(tenant_id=tenant_id, client_id=client.id, title=title, reference=reference)
    session.add(case)
    session.flush()
    return _case_public(case)
