"""Reading the call log: one call with its notes, the history with its filters and paging.

Agents see only their own calls, supervisors the whole firm's; every name joined in
(agent, client, case) is the firm's own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import phones
from services.authz import Permission, allowed, require_member
from services.db import Prepared
from services.errors import Invalid, NotFound
from services.models import (
    Blob,
    Call,
    CallDetail,
    CallFilters,
    CallLeg,
    CallLegPublic,
    CallNote,
    CallNotePublic,
    CallNumber,
    CallOrder,
    CallPublic,
    CallRecording,
    CallRecordingPublic,
    CallsPage,
    Case,
    Client,
    Principal,
    Tenant,
    User,
)
from services.models.call_numbers import AFTER_DIGITS, MIN_FRAGMENT
from services.pbx.recordings import MAX_FETCH_ATTEMPTS
from services.paging import decode_cursor, encode_cursor
from services.tenancy import owned_by, owned_join, tenant_select
from services.timestamps import aware, search_bound


MAX_PAGE_SIZE = 500


_AgentUser = sa.orm.aliased(User, name="agent_user")


_PUBLIC_COLUMNS = (
    Call.id,
    Call.agent_user_id,
    _AgentUser.full_name.label("agent_name"),
    Call.extension,
    Call.direction,
    Call.status,
    Call.remote_number,
    Call.remote_e164,
    Call.client_id,
    Client.name.label("client_name"),
    Call.case_id,
    Case.title.label("case_title"),
    Call.notes,
    Call.started_at,
    Call.answered_at,
    Call.ended_at,
    Call.ring_seconds,
    Call.talk_seconds,
    Call.hangup_cause,
    Call.sip_call_id,
)


def _public_select(tenant_id: int) -> sa.Select[Any]:
    """The firm's calls with the names of agent, client and case."""
    # The joins repeat the tenant so a stale foreign key can never surface another firm's name.
    return (
        sa.select(*_PUBLIC_COLUMNS)
        .select_from(Call)
        .outerjoin(_AgentUser, owned_join(_AgentUser, _AgentUser.id == Call.agent_user_id, tenant_id))
        .outerjoin(Client, owned_join(Client, Client.id == Call.client_id, tenant_id))
        .outerjoin(Case, owned_join(Case, Case.id == Call.case_id, tenant_id))
        .where(owned_by(Call, tenant_id))
    )


# A page's rows by their ids, built once (the firm and the ids bound at execution): the
# history runs it for every page, and building and compiling it each time cost ~1 ms.
_PAGE_ROWS = _public_select(sa.bindparam("page_tenant_id")).where(Call.id.in_(sa.bindparam("page_ids", expanding=True)))


def _public(row: Any) -> CallPublic:
    values = dict(row._mapping)
    values.pop("found", None)  # a number search's count, beside its page's rows
    return CallPublic.model_validate(values)


def _scope_to_actor(stmt: Any, actor: Principal) -> Any:
    """Agents see and change only their own calls; supervisors the whole firm's."""
    if allowed(actor, Permission.VIEW_ALL_CALLS):
        return stmt
    return stmt.where(Call.agent_user_id == actor.user_id)


def _owned_call(session: Session, tenant_id: int, actor: Principal, call_id: int) -> Call:
    require_member(actor, tenant_id)
    call = session.exec(_scope_to_actor(tenant_select(Call, tenant_id).where(Call.id == call_id), actor)).first()
    if call is None:
        raise NotFound("call not found")
    return call


def _load_public(session: Session, tenant_id: int, call_id: int) -> CallPublic:
    row = session.execute(_public_select(tenant_id).where(Call.id == call_id)).one()
    return _public(row)


def find_call_by_sip_id(*, session: Session, tenant_id: int, sip_call_id: str) -> CallPublic | None:
    """The firm's call with this SIP Call-ID, or None."""
    row = session.execute(
        _public_select(tenant_id).where(Call.sip_call_id == sip_call_id)
    ).one_or_none()
    return _public(row) if row else None


def _detail(session: Session, tenant_id: int, call_id: int) -> CallDetail:
    base = _load_public(session, tenant_id, call_id)
    notes = session.execute(
        sa.select(CallNote.id, CallNote.author_user_id, User.full_name, CallNote.body, CallNote.created_at)
        .outerjoin(User, owned_join(User, User.id == CallNote.author_user_id, tenant_id))
        .where(owned_by(CallNote, tenant_id), CallNote.call_id == call_id)
        .order_by(CallNote.created_at, CallNote.id)
    ).all()
    recordings = session.execute(
        sa.select(
            CallRecording.id, CallRecording.url, CallRecording.duration_seconds,
            CallRecording.blob_id.is_not(None).label("stored"),  # type: ignore[union-attr]
            (CallRecording.fetch_attempts >= MAX_FETCH_ATTEMPTS).label("fetch_failed"),
            sa.func.coalesce(Blob.content_type, "audio/wav").label("content_type"), Blob.size_bytes, CallRecording.purged_at,
        )
        .outerjoin(Blob, owned_join(Blob, Blob.id == CallRecording.blob_id, tenant_id))
        .where(owned_by(CallRecording, tenant_id), CallRecording.call_id == call_id)
        .order_by(CallRecording.id)
    ).all()
    return CallDetail(
        **base.model_dump(),
        note_entries=[
            CallNotePublic(id=i, author_user_id=a, author_name=name or "", body=b, created_at=c) for i, a, name, b, c in notes
        ],
        recordings=[CallRecordingPublic.model_validate(dict(r._mapping)) for r in recordings],
    )


def get_call(*, session: Session, tenant_id: int, actor: Principal, call_id: int) -> CallDetail:
    """One call with its notes, recordings and the names of agent, client and case."""
    call = _owned_call(session, tenant_id, actor, call_id)
    return _detail(session, tenant_id, call.id)


def get_call_legs(*, session: Session, tenant_id: int, actor: Principal, call_id: int) -> list[CallLegPublic]:
    """The PBX's legs of one call (who rang, for how long, who answered, transfers, who talked
    how long), in the order they started; [] for a call the PBX has not reported. Seen by
    whoever may see the call (:func:`get_call`): another firm's call, or another agent's for an
    agent, is :class:`NotFound`."""
    call = _owned_call(session, tenant_id, actor, call_id)
    rows = session.execute(
        sa.select(CallLeg, User.full_name)
        .outerjoin(User, owned_join(User, User.id == CallLeg.agent_user_id, tenant_id))
        .where(owned_by(CallLeg, tenant_id), CallLeg.call_id == call.id)
        .order_by(CallLeg.started_at, CallLeg.position, CallLeg.id)
    ).all()
    return [CallLegPublic.model_validate({**leg.model_dump(), "agent_name": name}) for leg, name in rows]


# The cursor names its order, so a cursor of one order cannot silently page the other.
_CURSOR_TAGS = {CallOrder.NEWEST_FIRST: "n", CallOrder.OLDEST_FIRST: "o"}


# A fragment found in more of the firm's numbers than this is searched by the scan: the calls
# of that many numbers cost more to fetch one number at a time than reading the firm's index.
# Counted as the dictionary's rows for the fragment (a number holding it twice counts twice).
MAX_DICTIONARY_NUMBERS = 2000

# A number search counts its matches exactly up to this many; past it the page says "more than"
# (CallsPage.count_is_lower_bound) instead of reading every match of a common group of digits.
COUNT_BOUND = 1000

# The planner of a number search answered by the dictionary. The numbers are never fetched:
# every statement reads them from the dictionary's range as a subquery. On PostgreSQL, and on
# SQLite in at most FEW_NUMBERS of them (the calls of one client's number, or of a long
# fragment; a few calls each), one statement looks their calls up in ix_call_tenant_remote,
# sorts them and returns the page (names joined) with their count up to the bound. On SQLite in
# more, the matches are counted first (up to the bound + 1): within the bound, the same one
# statement gives the page; past it, the firm's calls are read newest first by the history
# index, each tested against the numbers, until the page is full (at least COUNT_BOUND of the
# firm's calls match, so a page of 50 comes within the firm's calls x 51 / 1,001 calls, ~5 %),
# unless the page is deeper than WALK_MAX_OFFSET by number (then every match is sorted).
WALK_MAX_OFFSET = 500
FEW_NUMBERS = 20
# Where the walk is worth its count first. PostgreSQL reads each walked call's row for its
# numbers (~10x slower than the lookups on 1,000,000 calls: docs/PERFORMANCE.md, issue 16's third
# pass), and sorts a fragment's every match (at most ~16,000, index only) in a few milliseconds:
# there the one statement of the lookups answers every page.
WALK_DIALECTS = frozenset({"sqlite"})


def _number_fragment(number: str) -> str:
    """The digits a call's number must hold to match ``number``."""
    digits = phones.digits_of(number)
    if not digits:
        raise Invalid("number", "search by the digits of a number")
    # "0501…" as dialled at home appears as "+966501…" in E.164: the trunk prefix is dropped
    # (not from "0000", which would leave nothing, and nothing is in every number). A number
    # holding "0501…" holds "501…", so the digits without the 0s are the whole condition.
    return digits.lstrip("0") or digits


def _number_condition(fragment: str, e164: str | None) -> sa.ColumnElement[bool]:
    """The scan: digits anywhere in the number, read from the whole of ix_call_tenant_remote."""
    pattern = f"%{fragment}%"  # digits only, so no LIKE wildcard can slip in
    conditions = [
        Call.remote_e164.like(pattern),
        # The number as dialled matters only when it is no phone number (an extension, a
        # withheld or odd caller id); otherwise its E.164 form holds the same digits.
        sa.and_(Call.remote_e164.is_(None), Call.remote_number.like(pattern)),
    ]
    if e164:
        conditions.append(Call.remote_e164 == e164)
    return sa.or_(*conditions)


def _in_range(entity: Any) -> list[sa.ColumnElement[bool]]:
    """The dictionary's rows of the searched fragment (bound: tenant_id, low, high)."""
    return [
        owned_by(entity, sa.bindparam("tenant_id")),  # type: ignore[arg-type]
        entity.suffix >= sa.bindparam("low"),
        entity.suffix < sa.bindparam("high"),
    ]


# The firm's region (to read the typed number as a phone number) and how many rows of the
# dictionary hold the fragment, up to MAX_DICTIONARY_NUMBERS + 1 (one range read of its
# primary key, stopped there): one statement, compiled once.
_SEARCH_START = Prepared(
    sa.select(
        Tenant.region,
        sa.select(sa.func.count())
        .select_from(sa.select(CallNumber.number).where(*_in_range(CallNumber)).limit(sa.bindparam("most")).subquery())
        .scalar_subquery(),
    ).where(Tenant.id == sa.bindparam("tenant_id"))
)


def _dictionary(dialect: str) -> sa.Select[Any]:
    """The firm's numbers holding the fragment, as a subquery (bound: tenant_id, low, high)."""
    number: Any = CallNumber.number
    if dialect == "postgresql":
        # The dictionary keeps its text in the "C" collation (for its range); compared in the
        # calls' own, the numbers are looked up in ix_call_tenant_remote.
        number = sa.collate(number, "default")
    return sa.select(number).where(*_in_range(CallNumber))


def _number_lookups(dialect: str, others: list[Any], e164_apart: bool) -> list[sa.Select[Any]]:
    """The calls of the dictionary's numbers (and of the query's E.164 form when the fragment is
    not in it: ``e164_apart``, bound as e164), as disjoint lookups of ix_call_tenant_remote
    (tenant_id, remote_e164[, remote_number]): SQLite would scan the firm's index for the OR of
    both."""
    numbers = _dictionary(dialect)
    lookups = [
        sa.select(Call.id, Call.started_at).where(*others, Call.remote_e164.in_(numbers)),
        sa.select(Call.id, Call.started_at).where(*others, Call.remote_e164.is_(None), Call.remote_number.in_(numbers)),
    ]
    if e164_apart:
        # Not in the dictionary's numbers (its E.164 form does not hold the digits): no call
        # matched above has it.
        lookups.append(sa.select(Call.id, Call.started_at).where(*others, Call.remote_e164 == sa.bindparam("e164")))
    return lookups


def _number_membership(dialect: str, e164_apart: bool) -> sa.ColumnElement[bool]:
    """The same calls as :func:`_number_lookups`, as one test of a call's row (for the walk of
    the history index): its number among the dictionary's, or its E.164 form the query's."""
    member = sa.func.coalesce(Call.remote_e164, Call.remote_number).in_(_dictionary(dialect))
    return sa.or_(member, Call.remote_e164 == sa.bindparam("e164")) if e164_apart else member


def _bounded_count(parts: list[sa.Select[Any]], bound: int) -> sa.ScalarSelect[Any]:
    """How many rows the union of ``parts`` has, counted up to ``bound`` + 1."""
    union = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    return sa.select(sa.func.count()).select_from(union.limit(bound + 1).subquery()).scalar_subquery()


def _count_up_to(session: Session, parts: list[sa.Select[Any]], bound: int, params: dict[str, Any] | None = None) -> int:
    """How many rows the union of ``parts`` has, counted up to ``bound`` + 1."""
    return session.execute(sa.select(_bounded_count(parts, bound)), params or {}).scalar_one()


def _page_with_names(
    tenant_id: int, matched: Any, newest_first: bool, limit: int, offset: int, found: Any = None
) -> sa.Select[Any]:
    """The page of ``matched`` (a subquery or CTE of call ids and start times) in order, each
    call with the names of agent, client and case, and ``found`` (a bounded count) beside it:
    the page is picked from the ids alone and the joins run for its rows only."""
    def order(of: Any) -> tuple[Any, Any]:
        return (of.c.started_at.desc(), of.c.id.desc()) if newest_first else (of.c.started_at.asc(), of.c.id.asc())

    page = sa.select(matched.c.id, matched.c.started_at).order_by(*order(matched)).limit(limit).offset(offset).subquery("page")
    columns = [*_PUBLIC_COLUMNS, found.label("found")] if found is not None else list(_PUBLIC_COLUMNS)
    # The joins repeat the tenant so a stale foreign key can never surface another firm's name.
    return (
        sa.select(*columns)
        .select_from(page)
        .join(Call, sa.and_(Call.id == page.c.id, owned_by(Call, tenant_id)))
        .outerjoin(_AgentUser, owned_join(_AgentUser, _AgentUser.id == Call.agent_user_id, tenant_id))
        .outerjoin(Client, owned_join(Client, Client.id == Call.client_id, tenant_id))
        .outerjoin(Case, owned_join(Case, Case.id == Call.case_id, tenant_id))
        .order_by(*order(page))
    )


def _filter_conditions(session: Session, tenant_id: int, filters: CallFilters) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    date_from = aware(filters.date_from, "date_from")
    date_to = aware(filters.date_to, "date_to")
    if date_from and date_to and date_from >= date_to:
        raise Invalid("date_from", "the start is before the end")
    date_from = search_bound(date_from, "date_from")
    date_to = search_bound(date_to, "date_to")
    if date_from:
        conds.append(Call.started_at >= date_from)
    if date_to:
        conds.append(Call.started_at < date_to)
    if filters.direction:
        conds.append(Call.direction == filters.direction)
    if filters.statuses:
        conds.append(Call.status.in_(sorted(set(filters.statuses), key=lambda s: s.value)))
    if filters.agent_user_id is not None:
        conds.append(Call.agent_user_id == filters.agent_user_id)
    if filters.client_id is not None:
        conds.append(Call.client_id == filters.client_id)
    # The number filter is get_call_history's (_number_branches).
    return conds


def get_call_history(
    *,
    session: Session,
    tenant_id: int,
    actor: Principal,
    filters: CallFilters | None = None,
    cursor: str | None = None,
    page: int | None = None,
    page_size: int = 50,
    order: CallOrder | str = CallOrder.NEWEST_FIRST,
) -> CallsPage:
    """The firm's calls by started time (then id) in ``order``, filtered, one page at a time.

    Page with ``cursor`` (the ``next_cursor`` of the previous page in the same order;
    stable while calls are added) or with a page number; both give the same rows for the
    same position. ``count`` is the number of matching calls; for a number search, past
    :data:`COUNT_BOUND` of them it is the bound and ``count_is_lower_bound`` says there are
    more (every page is still there, by cursor or number). Agents see only their own calls.
    """
    require_member(actor, tenant_id)
    try:
        order = CallOrder(order)
    except ValueError:
        raise Invalid("order", "the order is NEWEST_FIRST or OLDEST_FIRST") from None
    newest_first = order == CallOrder.NEWEST_FIRST
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid("page_size", f"the page size is between 1 and {MAX_PAGE_SIZE}")
    if cursor is not None and page is not None:
        raise Invalid("cursor", "give a cursor or a page number, not both")
    if page is not None and page < 1:
        raise Invalid("page", "pages are numbered from 1")
    keyset = decode_cursor(cursor, _CURSOR_TAGS[order]) if cursor else None
    conds = [owned_by(Call, tenant_id), *_filter_conditions(session, tenant_id, filters or CallFilters())]
    if not allowed(actor, Permission.VIEW_ALL_CALLS):
        conds.append(Call.agent_user_id == actor.user_id)

    offset = (page - 1) * page_size if page is not None else 0
    sort = (Call.started_at.desc(), Call.id.desc()) if newest_first else (Call.started_at.asc(), Call.id.asc())
    by_start = sa.tuple_(Call.started_at, Call.id)
    after = None
    if keyset:
        after = sa.tuple_(sa.literal(keyset[0], Call.started_at.type), sa.literal(keyset[1]))
        after = by_start < after if newest_first else by_start > after
    # A number search counts up to COUNT_BOUND matches (bound); the other filters count them all.
    bound: int | None = None
    lookups: list[sa.Select[Any]] | None = None  # the dictionary's lookups (None: no number search by it)
    params: dict[str, Any] = {}  # the values of the dictionary's statements
    found: int | None = None  # the dictionary's matches, counted up to the bound + 1
    walk = False
    if filters is not None and filters.number is not None and filters.number.strip():
        fragment = _number_fragment(filters.number)
        bound = COUNT_BOUND
        connection = session.connection()
        params = {"tenant_id": tenant_id, "low": fragment, "high": fragment + AFTER_DIGITS, "most": MAX_DICTIONARY_NUMBERS + 1}
        start = _SEARCH_START.first(connection, params)
        if start is None:
            raise NotFound("firm not found")
        region, in_dictionary = start
        e164 = phones.try_normalise(filters.number, region)
        if len(fragment) < MIN_FRAGMENT or in_dictionary > MAX_DICTIONARY_NUMBERS:
            # Shorter than the dictionary keeps, or in most numbers: paged like any filter (the
            # history index read in order until the page is full, the count from
            # ix_call_tenant_remote).
            conds.append(_number_condition(fragment, e164))
        else:
            dialect = connection.dialect.name
            # The query's E.164 form is searched apart only when the digits are not in it (else
            # its calls are among the dictionary's numbers').
            e164_apart = e164 is not None and fragment not in e164
            params["e164"] = e164
            # The numbers' lookups drive: the other filters are only tested on their calls
            # (SQLite, without statistics, would otherwise read an agent's or a period's calls
            # by their own index). coalesce(…, false) keeps a condition out of index choice.
            others = [conds[0], *(sa.func.coalesce(c, sa.false()) for c in conds[1:])]
            lookups = _number_lookups(dialect, others, e164_apart)
            if in_dictionary > FEW_NUMBERS and dialect in WALK_DIALECTS:
                found = _count_up_to(session, lookups, bound, params)
                walk = found > bound and offset <= WALK_MAX_OFFSET
            if walk:
                # Past the bound: the history index read in order, each call tested against the
                # numbers (the other filters out of index choice likewise), until the page is full.
                conds = [*others, _number_membership(dialect, e164_apart)]
    rows: list[Any]
    if lookups is not None and not walk:
        # Within the bound (or a deep page by number): the numbers' calls, looked up number by
        # number and sorted by the database; one statement gives the page with the names and,
        # unless counted already, the matches counted up to the bound.
        if found == 0:
            rows = []
        else:
            parts = [q.where(after) for q in lookups] if after is not None else lookups
            union = parts[0] if len(parts) == 1 else sa.union_all(*parts)
            count = None
            if found is None:
                if after is None:
                    # The page and the count read the same lookups, once (PostgreSQL and
                    # SQLite materialise a common table expression read twice).
                    union = union.cte("matched")
                    count = sa.select(sa.func.count()).select_from(
                        sa.select(union.c.id).limit(bound + 1).subquery()
                    ).scalar_subquery()
                else:
                    count = _bounded_count(lookups, bound)
            matched = union if after is None and found is None else union.subquery("matched")
            rows = list(session.execute(_page_with_names(tenant_id, matched, newest_first, page_size + 1, offset, count), params))
            if rows and count is not None:
                found = rows[0].found
    elif walk:
        ids = sa.select(Call.id, Call.started_at).where(*conds)
        if after is not None:
            ids = ids.where(after)
        page_of = _page_with_names(tenant_id, ids.subquery("matched"), newest_first, page_size + 1, offset)
        rows = list(session.execute(page_of, params))
    else:
        # Pick the page's ids first: (tenant_id, started_at, id) read forwards or backwards
        # gives either order from the index alone, so a deep OFFSET skips index entries
        # instead of whole rows; the joins then run for the page's rows only.
        ids = sa.select(Call.id).where(*conds)
        if after is not None:
            ids = ids.where(after)
        ids = ids.order_by(*sort).limit(page_size + 1).offset(offset)
        id_list = list(session.execute(ids).scalars())
        # No ORDER BY here: with one, SQLite walks the history index instead of fetching 50 rowids.
        fetched = (
            session.connection().execute(_PAGE_ROWS, {"page_tenant_id": tenant_id, "page_ids": id_list[:page_size]}).all()
            if id_list
            else []
        )
        position = {call_id: i for i, call_id in enumerate(id_list)}
        rows = sorted(fetched, key=lambda row: position[row.id])
        if len(id_list) > page_size:
            rows.append(None)  # the next page's first call: there is one
    lower_bound = False
    matches = len(rows)
    if matches <= page_size and (rows or offset == 0) and not keyset:
        # The last page (or the only one) by number: the matches are the ones before it
        # and the ones on it, so counting them all again would tell nothing new.
        count = offset + matches
    elif bound is None:
        count = session.execute(sa.select(sa.func.count()).select_from(Call).where(*conds)).scalar_one()
    else:
        # Counted up to the bound: a common group of digits is in tens of thousands of calls.
        if found is None:
            found = _count_up_to(session, lookups if lookups is not None else [sa.select(Call.id).where(*conds)], bound, params)
        lower_bound = found > bound
        count = min(found, bound)
    has_more = matches > page_size
    data = [_public(row) for row in rows[:page_size]]
    next_cursor = encode_cursor(_CURSOR_TAGS[order], data[-1].started_at, data[-1].id) if has_more and data else None
    return CallsPage(
        data=data, count=count, count_is_lower_bound=lower_bound, next_cursor=next_cursor, page=page, page_size=page_size
    )
