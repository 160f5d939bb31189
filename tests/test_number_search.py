"""Number search through the firm's number dictionary (services/models/call_numbers.py) finds
exactly what a substring scan finds, in the same order and count: any part of a number, with or
without the country code or the trunk 0, short fragments, all-zero ones, '+', on phone numbers,
extensions and odd caller ids; and the dictionary follows every insert and change of a call."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import select

from services import phones
from services.call_center import call_history, get_call_history
from services.models import Call, CallFilters, CallNumber, CallStatus, Role, utcnow
from tests import factories as f


def _scan(session, tenant_id: int, query: str, *, region: str = "SA", agent_id: int | None = None,
          since=None) -> list[int]:
    """The meaning of a number search, by a plain substring scan in Python, newest first: the
    digits typed (and, typed with the trunk 0, without it) anywhere in the E.164 form, or in the
    number as dialled when it has no E.164 form; or the E.164 form equal to the query's."""
    digits = phones.digits_of(query)
    fragments = {digits} | ({digits.lstrip("0")} if digits.startswith("0") and digits.lstrip("0") else set())
    e164 = phones.try_normalise(query, region)
    found = []
    for call in session.exec(select(Call).where(Call.tenant_id == tenant_id)).all():
        if agent_id is not None and call.agent_user_id != agent_id:
            continue
        if since is not None and call.started_at < since:
            continue
        searched = call.remote_e164 if call.remote_e164 is not None else call.remote_number
        if any(fragment in searched for fragment in fragments) or (e164 and call.remote_e164 == e164):
            found.append((call.started_at, call.id))
    return [call_id for _, call_id in sorted(found, reverse=True)]


def _searched(session, tenant_id: int, actor, query: str, *, page_size: int = 7, expected: int | None = None,
              **filters) -> list[int]:
    """Every page of the search, by cursor, checking the count on each: exact up to the bound
    (call_history.COUNT_BOUND), past it the bound with count_is_lower_bound. ``expected``: how
    many match (else what the pages held)."""
    found: list[int] = []
    counts: list[tuple[int, bool]] = []
    cursor = None
    while True:
        page = get_call_history(session=session, tenant_id=tenant_id, actor=actor,
                                filters=CallFilters(number=query, **filters), page_size=page_size, cursor=cursor)
        found += [c.id for c in page.data]
        counts.append((page.count, page.count_is_lower_bound))
        if not page.next_cursor:
            total = len(found) if expected is None else expected
            bound = call_history.COUNT_BOUND
            assert set(counts) == {(min(total, bound), total > bound)}, query
            return found
        cursor = page.next_cursor


def _numbered(session, tenant_id: int, actor, query: str, *, page_size: int = 7) -> tuple[list[int], list[tuple[int, bool]]]:
    """Every page of the search by page number, and each page's (count, count_is_lower_bound)."""
    found: list[int] = []
    counts: list[tuple[int, bool]] = []
    page_number = 1
    while True:
        page = get_call_history(session=session, tenant_id=tenant_id, actor=actor, filters=CallFilters(number=query),
                                page_size=page_size, page=page_number)
        found += [c.id for c in page.data]
        counts.append((page.count, page.count_is_lower_bound))
        if not page.next_cursor:
            return found, counts
        page_number += 1


def _numbers(rng: random.Random) -> list[tuple[str, str | None]]:
    numbers: list[tuple[str, str | None]] = []
    for _ in range(300):
        kind = rng.random()
        if kind < 0.6:
            local = f"05{rng.choice('0345689')}{rng.randrange(10**7):07d}"
            numbers.append((local if rng.random() < 0.5 else "+966" + local[1:], "+966" + local[1:]))
        elif kind < 0.7:
            local = f"05{rng.choice('05')}000{rng.choice(['0000', '1000', '0001'])}"  # runs of zeros
            numbers.append((local, "+966" + local[1:]))
        elif kind < 0.8:
            numbers.append((str(rng.randrange(1000, 1100)), None))  # an extension
        elif kind < 0.85:
            numbers.append((f"050 {rng.randrange(1000):03d} {rng.randrange(10**4):04d}", None))  # as dialled, unparsed
        elif kind < 0.95:
            numbers.append((f"+4420{rng.randrange(10**8):08d}", f"+4420{rng.randrange(10**8):08d}"))
        else:
            numbers.append((rng.choice(["anonymous", "unknown", "+", "0", "+966"]), None))
    return numbers


def _queries(rng: random.Random, numbers: list[tuple[str, str | None]]) -> set[str]:
    queries = {"1", "10", "105", "1050", "0", "00", "000", "0000", "00000", "966", "+966", "9665", "0500", "4420",
               "050", "0050", "+0", "050 000", "(050) 0000", "123", "99999999999999"}
    e164s = [e for _, e in numbers if e]
    for e164 in rng.sample(e164s, 30):
        queries |= {e164[-4:], e164[6:10], e164[5:11], e164, e164[4:], "0" + e164[4:], e164[1:], e164[1:8],
                    "0" + e164[4:9], "00" + e164[1:], e164[-2:], e164[-3:]}
    raws = [n for n, e in numbers if not e]
    for raw in rng.sample(raws, 10):
        digits = phones.digits_of(raw)
        if digits:
            queries |= {digits[-3:], digits[:4], digits}
    for _ in range(40):
        queries.add("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 8))))
    return queries


# How a search's page is read: from the numbers' calls, looked up and sorted (in few numbers at
# once; for a deep page by number), from the matches read up to the bound + 1 with their count
# in one statement (when they are within the bound), or from the firm's calls walked newest first
# and tested against the numbers (past the bound; here up to a numbered page 3 deep). In "lookup"
# and "walk" the bound is small so that most searches pass it; in "within" none does.
PLANS = {
    "lookup": {"COUNT_BOUND": 9, "FEW_NUMBERS": 10**6},
    "walk": {"COUNT_BOUND": 9, "FEW_NUMBERS": 0, "WALK_MAX_OFFSET": 14},
    "within": {"COUNT_BOUND": 10**6, "FEW_NUMBERS": 0},
}


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_any_part_of_a_number_finds_what_a_scan_finds(session, monkeypatch, plan):
    for name, value in PLANS[plan].items():
        monkeypatch.setattr(call_history, name, value)
    walks: list[int] = []
    membership = call_history._number_membership
    monkeypatch.setattr(call_history, "_number_membership", lambda session, numbers, e164: walks.append(1) or membership(session, numbers, e164))
    counted_pages: list[bool] = []  # for each page read with its count: past the first page
    counted_page = call_history._counted_page

    def counting(session, lookups, after_of, newest_first, limit, offset, bound):
        counted_pages.append(offset > 0 or after_of(Call.started_at, Call.id) is not None)
        return counted_page(session, lookups, after_of, newest_first, limit, offset, bound)

    monkeypatch.setattr(call_history, "_counted_page", counting)
    rng = random.Random(16)
    firm = f.make_firm(session)
    other = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    agent = f.make_user(session, firm.tenant, Role.AGENT)
    numbers = _numbers(rng)
    start = utcnow() - timedelta(days=3)
    for i, (number, e164) in enumerate(numbers * 2):
        at = start + timedelta(minutes=rng.randrange(3 * 24 * 60))  # equal times too: the id breaks the tie
        f.make_call(session, firm.tenant, agent=agent if i % 3 == 0 else None, remote_number=number,
                    remote_e164=e164, started_at=at)
        # The other firm's calls share the numbers: never in this firm's results.
        f.make_call(session, other.tenant, remote_number=number, remote_e164=e164, started_at=at)
    tenant_id = firm.tenant.id
    agent_principal = f.principal_of(agent)
    since = start + timedelta(days=1)
    past_bound = 0
    for query in sorted(_queries(rng, numbers)):
        expected = _scan(session, tenant_id, query)
        past_bound += len(expected) > call_history.COUNT_BOUND
        assert _searched(session, tenant_id, manager, query, expected=len(expected)) == expected, query
        # By page number: the same pages past the bound; each counts up to the bound, the last
        # one exactly (the matches before it and on it).
        found, counts = _numbered(session, tenant_id, manager, query)
        assert found == expected, query
        bound = call_history.COUNT_BOUND
        assert set(counts[:-1]) <= {(min(len(expected), bound), len(expected) > bound)}, query
        assert counts[-1] == (len(expected), False), query
        # With other filters, and seen by an agent (own calls only).
        own = _scan(session, tenant_id, query, agent_id=agent.id, since=since)
        assert _searched(session, tenant_id, agent_principal, query, date_from=since, expected=len(own)) == own, query
    if plan == "within":
        assert past_bound == 0 and not walks
        # Every search counted with its page: first pages and later ones (by cursor and number).
        assert counted_pages.count(True) > 100 and counted_pages.count(False) > 100
    else:
        assert past_bound > 50  # the bound was passed, and on both plans
        assert (len(walks) > 100) if plan == "walk" else not walks


def test_the_count_is_exact_up_to_the_bound_and_says_more_past_it(session, monkeypatch):
    monkeypatch.setattr(call_history, "COUNT_BOUND", 5)
    firm = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    tenant_id = firm.tenant.id
    for i in range(6):
        f.make_call(session, firm.tenant, remote_number=f"05512{i}4455", remote_e164=f"+9665512{i}4455",
                    started_at=utcnow() - timedelta(minutes=i))
    f.make_call(session, firm.tenant, remote_number="0559994455", remote_e164="+966559994455")

    def first_page(query: str, **kwargs) -> tuple[int, bool, int, bool]:
        page = get_call_history(session=session, tenant_id=tenant_id, actor=manager, filters=CallFilters(number=query),
                                **kwargs)
        return page.count, page.count_is_lower_bound, len(page.data), page.next_cursor is not None

    assert first_page("1204455", page_size=2) == (1, False, 1, False)
    assert first_page("5512", page_size=2) == (5, True, 2, True)  # 6 matches: "more than 5"
    assert first_page("4455", page_size=2) == (5, True, 2, True)  # 7
    monkeypatch.setattr(call_history, "COUNT_BOUND", 6)
    assert first_page("5512", page_size=2) == (6, False, 2, True)  # exactly the bound: exact
    assert first_page("4455", page_size=2) == (6, True, 2, True)
    # The last numbered page knows how many there are, past the bound too.
    assert first_page("4455", page_size=2, page=4) == (7, False, 1, False)
    # The scan (a fragment shorter than the dictionary keeps) is bounded as well.
    assert first_page("55", page_size=2) == (6, True, 2, True)
    # Other filters count every match.
    everything = get_call_history(session=session, tenant_id=tenant_id, actor=manager, page_size=2)
    assert (everything.count, everything.count_is_lower_bound) == (7, False)


def test_the_dictionary_answers_a_group_of_digits_and_the_scan_a_fragment_in_too_many_numbers(session, monkeypatch):
    firm = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    for i in range(12):
        local = f"0551{i:02d}7788"
        f.make_call(session, firm.tenant, remote_number=local, remote_e164="+966" + local[1:],
                    started_at=utcnow() - timedelta(minutes=i))
    scans: list[str] = []
    scan = call_history._number_condition
    monkeypatch.setattr(call_history, "_number_condition", lambda fragment, e164: scans.append("x") or scan(fragment, e164))
    tenant_id = firm.tenant.id
    assert _searched(session, tenant_id, manager, "017788") == _scan(session, tenant_id, "017788")
    assert _searched(session, tenant_id, manager, "7788") == _scan(session, tenant_id, "7788")
    assert scans == []  # both answered by the dictionary
    assert _searched(session, tenant_id, manager, "55", page_size=50) == _scan(session, tenant_id, "55")  # too short: the scan
    assert scans == ["x"]
    monkeypatch.setattr(call_history, "MAX_DICTIONARY_NUMBERS", 11)
    assert len(_searched(session, tenant_id, manager, "7788", page_size=50)) == 12  # in 12 numbers: the scan
    assert scans == ["x", "x"]


def test_the_dictionary_follows_inserts_changes_and_deletes_of_calls(session):
    firm = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    tenant_id = firm.tenant.id
    first = f.make_call(session, firm.tenant, remote_number="0501112222", remote_e164="+966501112222")
    gone = f.make_call(session, firm.tenant, remote_number="0503334444", remote_e164="+966503334444")
    raw = f.make_call(session, firm.tenant, remote_number="1042")
    assert _searched(session, tenant_id, manager, "1112") == [first.id]
    assert _searched(session, tenant_id, manager, "104") == [raw.id]
    # A number corrected: found by its new digits, no longer by its old ones.
    first.remote_number, first.remote_e164 = "0557778888", "+966557778888"
    session.add(first)
    session.flush()
    assert _searched(session, tenant_id, manager, "7778") == [first.id]
    assert _searched(session, tenant_id, manager, "1112") == []
    # A deleted call leaves its number in the dictionary, which matches no call.
    session.delete(gone)
    session.flush()
    assert _searched(session, tenant_id, manager, "3334") == []
    # A bulk insert (as the PBX ledger and the seed write calls) is indexed too.
    session.execute(sa.insert(Call), [
        {"tenant_id": tenant_id, "direction": "INBOUND", "status": CallStatus.MISSED, "remote_number": n, "remote_e164": e,
         "started_at": utcnow(), "updated_at": utcnow(), "notes": ""}
        for n, e in (("0509990000", "+966509990000"), ("0509990000", "+966509990000"), ("2055", None))
    ])
    assert len(_searched(session, tenant_id, manager, "999")) == 2
    assert len(_searched(session, tenant_id, manager, "205")) == 1
    # One dictionary row per kept suffix of each distinct number, the whole number included.
    suffixes = set(session.execute(
        sa.select(CallNumber.suffix).where(CallNumber.tenant_id == tenant_id, CallNumber.number == "+966509990000")
    ).scalars())
    assert suffixes == {"+966509990000"} | {"966509990000"[i:] for i in range(len("966509990000") - 2)}


@pytest.mark.parametrize("query", ["", "   ", "abc", "+"])
def test_a_number_without_digits_is_refused_or_ignored(session, query):
    firm = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    f.make_call(session, firm.tenant, remote_number="0501112222", remote_e164="+966501112222")
    if not query.strip():
        assert get_call_history(session=session, tenant_id=firm.tenant.id, actor=manager,
                                filters=CallFilters(number=query)).count == 1
        return
    from services.errors import Invalid

    with pytest.raises(Invalid):
        get_call_history(session=session, tenant_id=firm.tenant.id, actor=manager, filters=CallFilters(number=query))


def test_a_search_sends_the_same_statements_however_many_numbers_it_finds(session):
    """PostgreSQL: the numbers a search found, and its page's ids, are bound as one array, so
    its statements have the same text for 25 numbers as for 40: the driver prepares each once,
    where a list of a few hundred parameters was parsed and planned for every search. SQLite
    plans in microseconds and keeps its lists (one text per length)."""
    firm = f.make_firm(session)
    manager = f.principal_of(f.make_user(session, firm.tenant, Role.MANAGER))
    for group, count in (("1", 25), ("2", 40)):
        fragment = "7788" if group == "1" else "4466"
        for i in range(count):
            local = f"055{group}{i:02d}0{fragment}"
            f.make_call(session, firm.tenant, remote_number=local, remote_e164="+966" + local[1:],
                        started_at=utcnow() - timedelta(minutes=i))
    engine = session.get_bind()

    def statements(query: str, expected: int) -> list[str]:
        sent: list[str] = []

        def seen(conn, cursor, statement, parameters, context, executemany) -> None:
            sent.append(statement)

        sa.event.listen(engine, "before_cursor_execute", seen)
        try:
            page = get_call_history(session=session, tenant_id=firm.tenant.id, actor=manager,
                                    filters=CallFilters(number=query), page_size=50)
        finally:
            sa.event.remove(engine, "before_cursor_execute", seen)
        assert (page.count, len(page.data)) == (expected, expected)
        assert [c.id for c in page.data] == _scan(session, firm.tenant.id, query)
        return sent

    fewer, more = statements("7788", 25), statements("4466", 40)
    assert len(fewer) == len(more) >= 3  # the same plan: more numbers than FEW_NUMBERS, within the bound
    if engine.dialect.name == "postgresql":
        assert fewer == more
    else:
        assert fewer != more
