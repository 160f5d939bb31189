"""The shared helpers every area builds on: upserts, cursors, typed days, roles."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from services import authz, db, paging
from services.authz import Permission, Role
from services.errors import Forbidden, Invalid
from services.models import LoginThrottle, Principal
from services.timestamps import local_day_range

# --------------------------------------------------------------------------- db.dialect_insert


def test_dialect_insert_upserts_on_the_sessions_database(session: Session) -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    row = {"key_hash": "k" * 64, "attempts": 1, "window_started_at": now}
    for attempts in (1, 5):
        session.execute(
            db.dialect_insert(session, LoginThrottle)
            .values({**row, "attempts": attempts})
            .on_conflict_do_update(index_elements=["key_hash"], set_={"attempts": attempts})
        )
    # The bind, a Core table, and a conflict that changes nothing.
    session.execute(
        db.dialect_insert(session.get_bind(), LoginThrottle.__table__).values(row).on_conflict_do_nothing(index_elements=["key_hash"])
    )
    assert session.exec(select(LoginThrottle.attempts)).all() == [5]


def test_dialect_insert_refuses_a_database_without_upsert() -> None:
    mysql = SimpleNamespace(dialect=SimpleNamespace(name="mysql"))
    with pytest.raises(NotImplementedError, match="mysql"):
        db.dialect_insert(mysql, LoginThrottle)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- paging


def test_a_cursor_round_trips_its_time_and_id() -> None:
    at = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=ZoneInfo("Asia/Riyadh"))
    assert paging.decode_cursor(paging.encode_cursor("wa", at, 42), "wa") == (at, 42)


def test_a_cursor_of_another_list_is_refused() -> None:
    cursor = paging.encode_cursor("n", datetime(2026, 3, 1, tzinfo=timezone.utc), 7)
    with pytest.raises(Invalid) as err:
        paging.decode_cursor(cursor, "o")
    assert err.value.field == "cursor"


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"n:12:abc").decode(),
        base64.urlsafe_b64encode(b"n:99999999999999999999:1").decode(),
        base64.urlsafe_b64encode(b"n:-99999999999999999:1").decode(),
        base64.urlsafe_b64encode(f"n:1:{2**63}".encode()).decode(),
        base64.urlsafe_b64encode("n:1:\u0661".encode()).decode(),
    ],
)
def test_anything_not_made_by_encode_cursor_is_invalid(cursor: str) -> None:
    with pytest.raises(Invalid) as err:
        paging.decode_cursor(cursor, "n")
    assert err.value.field == "cursor"


def test_a_cursor_needs_a_tag_and_a_zone() -> None:
    with pytest.raises(ValueError):
        paging.encode_cursor("N:1", datetime(2026, 1, 1, tzinfo=timezone.utc), 1)
    with pytest.raises(ValueError):
        paging.encode_cursor("n", datetime(2026, 1, 1), 1)


# --------------------------------------------------------------------------- timestamps.local_day_range


def test_typed_days_become_a_half_open_local_range() -> None:
    start, end = local_day_range("2026-03-01", "2026-03-01", "Asia/Riyadh")
    zone = ZoneInfo("Asia/Riyadh")
    assert start == datetime(2026, 3, 1, tzinfo=zone)
    assert end == datetime(2026, 3, 2, tzinfo=zone)
    assert local_day_range("", None, "UTC") == (None, None)
    assert local_day_range(" 2026-03-01 ", "", "UTC") == (datetime(2026, 3, 1, tzinfo=ZoneInfo("UTC")), None)


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("01/03/2026", "", "from"),
        ("", "2026-02-30", "to"),
        ("1999-12-31", "", "from"),
        ("", "9999-12-31", "to"),
        ("2026-03-02", "2026-03-01", "to"),
    ],
)
def test_a_bad_typed_day_names_its_field(first: str, last: str, field: str) -> None:
    with pytest.raises(Invalid) as err:
        local_day_range(first, last, "Asia/Riyadh", first_field="from", last_field="to")
    assert err.value.field == field


# --------------------------------------------------------------------------- authz


def _principal(role: Role, tenant_id: int = 1) -> Principal:
    return Principal(user_id=1, tenant_id=tenant_id, role=role)


@pytest.mark.parametrize(
    ("permission", "roles"),
    [
        (Permission.USE_MODULE, set(Role)),
        (Permission.VIEW_ALL_CALLS, {Role.OWNER, Role.ADMIN, Role.MANAGER}),
        (Permission.LIST_EXTENSIONS, {Role.OWNER, Role.ADMIN, Role.MANAGER}),
        (Permission.DELETE_CALLS, {Role.OWNER, Role.ADMIN}),
        (Permission.MANAGE_EXTENSIONS, {Role.OWNER, Role.ADMIN}),
        (Permission.MANAGE_USERS, {Role.OWNER, Role.ADMIN}),
        (Permission.LINK_WHATSAPP, {Role.OWNER, Role.ADMIN}),
        (Permission.MANAGE_OWNERS, {Role.OWNER}),
    ],
)
def test_each_permission_is_granted_to_exactly_its_roles(permission: Permission, roles: set[Role]) -> None:
    assert {r for r in Role if authz.allowed(_principal(r), permission)} == roles
    for role in Role:
        if role in roles:
            authz.require(_principal(role), permission, tenant_id=1)
        else:
            with pytest.raises(Forbidden):
                authz.require(_principal(role), permission, tenant_id=1)


def test_every_permission_has_grants() -> None:
    assert set(authz.GRANTS) == set(Permission)


def test_a_principal_of_another_firm_is_refused_whatever_its_role() -> None:
    owner_elsewhere = _principal(Role.OWNER, tenant_id=2)
    assert not authz.allowed(owner_elsewhere, Permission.USE_MODULE, tenant_id=1)
    with pytest.raises(Forbidden):
        authz.require(owner_elsewhere, Permission.USE_MODULE, tenant_id=1)
    with pytest.raises(Forbidden):
        authz.require_member(owner_elsewhere, 1)


def test_page_levels_admit_their_roles() -> None:
    assert {r for r in Role if authz.allowed(_principal(r), "admin")} == {Role.OWNER, Role.ADMIN}
    assert {r for r in Role if authz.allowed(_principal(r), "supervisor")} == {Role.OWNER, Role.ADMIN, Role.MANAGER}
    assert {r for r in Role if authz.allowed(_principal(r), "member")} == set(Role)
