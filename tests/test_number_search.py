"""Number search through the trigram index (FTS5 on SQLite, pg_trgm on PostgreSQL) finds exactly
what a scan of the numbers finds: any part of a number, with or without the country code or
the trunk 0, on phone numbers, extensions and odd caller ids; and the index follows every
insert, change and delete of a call."""

from __future__ import annotations

import random
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import select

from services import phones
from services.call_center import get_call_history
from services.models import Call, CallFilters, Role, utcnow
from tests import factories as f


def _scan(session, tenant_id: int, query: str, region: str = "SA") -> set[int]:
    """The meaning of a number search, by a plain scan in Python: the digits typed (and, typed
    with the trunk 0, without it, and the query's E.164 form) anywhere in the E.164 form, or in
    the number as dialled when it has no E.164 form."""
    digits = phones.digits_of(query)
    fragments = {digits} | ({digits.lstrip("0")} if digits.startswith("0") and len(digits) > 1 else set())
    e164 = phones.try_normalise(query, region)
    fragments |= {e164} if e164 else set()
    found = set()
    for call in session.exec(select(Call).where(Call.tenant_id == tenant_id)).all():
        searched = call.remote_e164 if call.remote_e164 is not None else call.remote_number
        if any(fragment in searched for fragment in fragments):
            found.add(call.id)
    return found


def _searched(session, tenant_id: int, actor, query: str) -> set[int]:
    found: set[int] = set()
    page = get_call_history(session=session, tenant_id=tenant_id, actor=actor, filters=CallFilters(number=query), page_size=200)
    while True:
        found |= {c.id for c in page.data}
        assert page.count >= len(found)
        if not page.next_cursor:
            return found
        page = get_call_history(session=session, tenant_id=tenant_id, actor=actor, filters=CallFilters(number=query),
                                page_size=200, cursor=page.next_cursor)


def test_any_part_of_a_number_finds_what_a_scan_finds_and_the_index_follows_changes(session):
    rng = random.Random(16)
    firm = f.make_firm(session)
    other = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    numbers: list[tuple[str, str | None]] = []
    for _ in range(300):
        kind = rng.random()
        if kind < 0.7:
            local = f"05{rng.choice('0345689')}{rng.randrange(10**7):07d}"
            numbers.append((local if rng.random() < 0.5 else "+966" + local[1:], "+966" + local[1:]))
        elif kind < 0.85:
            numbers.append((str(rng.randrange(1000, 1100)), None))  # an extension
        elif kind < 0.95:
            numbers.append((f"+4420{rng.randrange(10**8):08d}", f"+4420{rng.randrange(10**8):08d}"))
        else:
            numbers.append((rng.choice(["anonymous", "unknown", "+", "0"]), None))
    start = utcnow() - timedelta(days=3)
    for i, (number, e164) in enumerate(numbers):
        f.make_call(session, firm.tenant, remote_number=number, remote_e164=e164, started_at=start + timedelta(minutes=i))
        # The other firm's calls share the numbers: never in this firm's results.
        f.make_call(session, other.tenant, remote_number=number, remote_e164=e164, started_at=start + timedelta(minutes=i))
    e164s = [e for _, e in numbers if e]
    queries = {"10", "105", "1050", "00", "966", "+966", "0500", "4420"}
    for e164 in rng.sample(e164s, 25):
        queries |= {e164[-4:], e164[6:10], e164, e164[4:], "0" + e164[4:], e164[1:]}
    tenant_id = firm.tenant.id
    for query in sorted(queries):
        assert _searched(session, tenant_id, manager, query) == _scan(session, tenant_id, query), query

    # The index follows changes: a number corrected, a call deleted, a call added.
    changed, gone = session.exec(select(Call).where(Call.tenant_id == tenant_id).order_by(Call.id).limit(2)).all()
    changed.remote_number, changed.remote_e164 = "0551239876", "+966551239876"
    session.add(changed)
    session.delete(gone)
    session.flush()
    added = f.make_call(session, firm.tenant, remote_number="1239", started_at=utcnow())
    for query in ("1239876", "9876", "1239", str(gone.remote_e164 or gone.remote_number)[-4:] or "0"):
        assert _searched(session, tenant_id, manager, query) == _scan(session, tenant_id, query), query
    assert {changed.id, added.id} <= _searched(session, tenant_id, manager, "1239")
    assert session.execute(sa.select(sa.func.count()).select_from(Call).where(Call.id == gone.id)).scalar_one() == 0
