"""The client directory and cases, scoped by tenant."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from services import clients, db
from services.errors import Invalid, NotFound
from services.models import Client, ClientCreate
from tests import factories


def test_create_client_normalises_the_phone_with_the_tenants_region(session: Session) -> None:
    tenant = factories.make_tenant(session)
    c = clients.create_client(session=session, tenant_id=tenant.id,
                              data=ClientCreate(name=" Mohammed Al-Otaibi ", phone="050 123 4567", email=" M@Example.com "))
    assert (c.name, c.phone, c.phone_e164, c.email) == ("Mohammed Al-Otaibi", "050 123 4567", "+966501234567", "m@example.com")
    assert clients.get_client(session=session, tenant_id=tenant.id, client_id=c.id) == c


def test_region_of_the_tenant_decides_national_numbers(session: Session) -> None:
    tenant = factories.make_tenant(session, region="GB", timezone="Europe/London")
    c = clients.create_client(session=session, tenant_id=tenant.id, data=ClientCreate(name="London Client", phone="020 7946 0018"))
    assert c.phone_e164 == "+442079460018"


def test_client_without_phone_or_email_is_allowed(session: Session) -> None:
    tenant = factories.make_tenant(session)
    c = clients.create_client(session=session, tenant_id=tenant.id, data=ClientCreate(name="Walk-in", phone="  ", email=""))
    assert (c.phone, c.phone_e164, c.email) == ("", None, None)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": "Bad Phone", "phone": "12345"}, "phone"),
        ({"name": "Bad Phone", "phone": "call me"}, "phone"),
        ({"name": "Bad Phone", "phone": "5" * 65}, "phone"),
        ({"name": "Bad Email", "email": "no-at-sign"}, "email"),
    ],
)
def test_create_client_rejects_bad_input_and_stores_nothing(session: Session, fields: dict[str, str], field: str) -> None:
    tenant = factories.make_tenant(session)
    # Built inside: a value past ClientBase's limits is refused as the DTO is built.
    with pytest.raises(Invalid) as err:
        clients.create_client(session=session, tenant_id=tenant.id, data=ClientCreate(**fields))
    assert err.value.field == field
    assert session.exec(select(Client)).all() == []


def test_a_case_past_its_declared_limits_is_invalid_with_the_same_sentence_as_a_dto(session: Session) -> None:
    tenant = factories.make_tenant(session)
    client = factories.make_client(session, tenant)
    with pytest.raises(Invalid) as err:
        clients.create_case(session=session, tenant_id=tenant.id, client_id=client.id, title="t" * 201)
    assert (err.value.field, err.value.message) == ("title", "a case title is at most 200 characters")
    with pytest.raises(Invalid) as err:
        clients.create_case(session=session, tenant_id=tenant.id, client_id=client.id, title="Lease", reference="r" * 65)
    assert (err.value.field, err.value.message) == ("reference", "a reference is at most 64 characters")
    with pytest.raises(Invalid) as err:
        ClientCreate(name="n" * 201)
    assert (err.value.field, err.value.message) == ("name", "a client name is at most 200 characters")


def test_another_tenants_client_is_not_found(session: Session) -> None:
    mine, theirs = factories.make_tenant(session), factories.make_tenant(session)
    foreign = factories.make_client(session, theirs)
    with pytest.raises(NotFound):
        clients.get_client(session=session, tenant_id=mine.id, client_id=foreign.id)
    with pytest.raises(NotFound):
        clients.list_cases(session=session, tenant_id=mine.id, client_id=foreign.id)
    with pytest.raises(NotFound):
        clients.create_case(session=session, tenant_id=mine.id, client_id=foreign.id, title="Steal")


def test_list_clients_pages_by_name_within_the_tenant(session: Session) -> None:
    mine, theirs = factories.make_tenant(session), factories.make_tenant(session)
    for name, phone in [("Sara", "0551110000"), ("Abdullah", "0552220000"), ("Nora", "0553330000")]:
        factories.make_client(session, mine, name=name, phone=phone)
    factories.make_client(session, theirs, name="Aaron Foreign", phone="0554440000")
    first = clients.list_clients(session=session, tenant_id=mine.id, limit=2)
    second = clients.list_clients(session=session, tenant_id=mine.id, limit=2, offset=2)
    assert first.count == second.count == 3
    assert [c.name for c in first.data + second.data] == ["Abdullah", "Nora", "Sara"]


def test_search_matches_name_parts_case_insensitively(session: Session) -> None:
    tenant = factories.make_tenant(session)
    factories.make_client(session, tenant, name="Mohammed Al-Otaibi", phone="0501234567")
    factories.make_client(session, tenant, name="Nora Al-Qahtani", phone="0559876543")
    factories.make_client(session, tenant, name="100% Legal_Co", phone="0551112222")
    factories.make_client(session, tenant, name="محمد العتيبي", phone="0561112222")
    assert [c.name for c in clients.list_clients(session=session, tenant_id=tenant.id, search="otai").data] == ["Mohammed Al-Otaibi"]
    assert clients.list_clients(session=session, tenant_id=tenant.id, search="AL-").count == 2
    assert [c.name for c in clients.list_clients(session=session, tenant_id=tenant.id, search="0% L").data] == ["100% Legal_Co"]
    assert clients.list_clients(session=session, tenant_id=tenant.id, search="%").count == 1
    assert clients.list_clients(session=session, tenant_id=tenant.id, search="_").count == 1
    assert [c.name for c in clients.list_clients(session=session, tenant_id=tenant.id, search="العتيبي").data] == ["محمد العتيبي"]


@pytest.mark.parametrize("search", ["0501234567", "+966 50 123 4567", "966501234567", "1234567", "050-123"])
def test_search_matches_number_digits_in_any_format(session: Session, search: str) -> None:
    tenant = factories.make_tenant(session)
    factories.make_client(session, tenant, name="Mohammed", phone="0501234567")
    factories.make_client(session, tenant, name="Nora", phone="0559876543")
    assert [c.name for c in clients.list_clients(session=session, tenant_id=tenant.id, search=search).data] == ["Mohammed"]


def test_search_never_crosses_tenants(session: Session) -> None:
    mine, theirs = factories.make_tenant(session), factories.make_tenant(session)
    factories.make_client(session, theirs, name="Hidden Client", phone="0501234567")
    assert clients.list_clients(session=session, tenant_id=mine.id, search="Hidden").count == 0
    assert clients.list_clients(session=session, tenant_id=mine.id, search="0501234567").count == 0


@pytest.mark.parametrize(("limit", "offset", "field"), [(0, 0, "limit"), (501, 0, "limit"), (10, -1, "offset")])
def test_list_clients_rejects_bad_paging(session: Session, limit: int, offset: int, field: str) -> None:
    tenant = factories.make_tenant(session)
    with pytest.raises(Invalid) as err:
        clients.list_clients(session=session, tenant_id=tenant.id, limit=limit, offset=offset)
    assert err.value.field == field


def test_match_number_finds_only_this_tenants_oldest_client(session: Session) -> None:
    mine, theirs = factories.make_tenant(session), factories.make_tenant(session)
    foreign = factories.make_client(session, theirs, phone="0501234567")
    first = factories.make_client(session, mine, name="First", phone="+966 50 123 4567")
    factories.make_client(session, mine, name="Second", phone="00966501234567")
    found = clients.match_number(session=session, tenant_id=mine.id, e164="+966501234567")
    assert found is not None and found.id == first.id and found.name == "First"
    assert clients.match_number(session=session, tenant_id=theirs.id, e164="+966501234567").id == foreign.id
    assert clients.match_number(session=session, tenant_id=mine.id, e164="+966559999999") is None
    assert clients.match_number(session=session, tenant_id=mine.id, e164=None) is None


def test_match_numbers_maps_each_number_to_the_tenants_oldest_client(session: Session) -> None:
    mine, theirs = factories.make_tenant(session), factories.make_tenant(session)
    factories.make_client(session, theirs, phone="0551112222")
    first = factories.make_client(session, mine, phone="0501234567")
    factories.make_client(session, mine, phone="00966501234567")
    other = factories.make_client(session, mine, phone="0507654321")
    matched = clients.match_numbers(
        session=session, tenant_id=mine.id, numbers=["+966501234567", "+966507654321", "+966551112222", ""]
    )
    assert matched == {"+966501234567": first.id, "+966507654321": other.id}
    assert clients.match_numbers(session=session, tenant_id=mine.id, numbers=[]) == {}


def test_match_number_uses_the_tenant_phone_index(session: Session, engine: sa.Engine) -> None:
    tenant = factories.make_tenant(session)
    factories.make_client(session, tenant)
    session.commit()
    for query in (
        select(Client.id).where(clients._oldest_clients(tenant.id, ["+966501234567"])),
        clients.oldest_client(tenant.id, "+966501234567"),
    ):
        compiled = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            if db.is_sqlite(engine):
                plan = " ".join(str(r[-1]) for r in conn.execute(sa.text("EXPLAIN QUERY PLAN " + compiled)))
                assert "ix_client_tenant_phone" in plan, plan
            else:
                conn.execute(sa.text("SET enable_seqscan = off"))
                plan = " ".join(r[0] for r in conn.execute(sa.text("EXPLAIN " + compiled)))
                assert "ix_client_tenant_phone" in plan, plan


def test_cases_of_a_client_and_of_the_tenant(session: Session) -> None:
    mine, theirs = factories.make_tenant(session), factories.make_tenant(session)
    a, b = factories.make_client(session, mine), factories.make_client(session, mine, phone="0559876543")
    first = clients.create_case(session=session, tenant_id=mine.id, client_id=a.id, title=" Labour claim ", reference=" AW-1 ")
    second = clients.create_case(session=session, tenant_id=mine.id, client_id=b.id, title="Lease termination")
    factories.make_case(session, theirs, factories.make_client(session, theirs))
    assert (first.title, first.reference, first.status.value, first.client_id) == ("Labour claim", "AW-1", "OPEN", a.id)
    assert [c.id for c in clients.list_cases(session=session, tenant_id=mine.id)] == [second.id, first.id]
    assert [c.id for c in clients.list_cases(session=session, tenant_id=mine.id, client_id=a.id)] == [first.id]


@pytest.mark.parametrize(("title", "reference", "field"), [("  ", "", "title"), ("t" * 201, "", "title"), ("Ok", "r" * 65, "reference")])
def test_create_case_rejects_bad_input(session: Session, title: str, reference: str, field: str) -> None:
    tenant = factories.make_tenant(session)
    client = factories.make_client(session, tenant)
    with pytest.raises(Invalid) as err:
        clients.create_case(session=session, tenant_id=tenant.id, client_id=client.id, title=title, reference=reference)
    assert err.value.field == field
    assert clients.list_cases(session=session, tenant_id=tenant.id) == []
