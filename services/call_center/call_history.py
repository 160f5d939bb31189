"""Reading the call log: one call with its notes, the history with its filters and paging.

Agents see only their own calls, supervisors the whole firm's; every name joined in
(agent, client, case) is the firm's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import phones
from services.authz import Permission, allowed, require_member
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
# PostgreSQL: the ids as one array (see _among), one text for every page length.
_PAGE_ROWS_ANY = _public_select(sa.bindparam("page_tenant_id")).where(
    Call.id == sa.any_(sa.bindparam("page_ids", type_=sa.ARRAY(sa.Integer)))
)


def _public(row: Any) -> CallPublic:
    return CallPublic.model_validate(dict(row._mapping))


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
MAX_DICTIONARY_NUMBERS = 2000

# A number search counts its matches exactly up to this many; past it the page says "more than"
# (CallsPage.count_is_lower_bound) instead of reading every match of a common group of digits.
COUNT_BOUND = 1000

# The planner of a number search answered by the dictionary. In few numbers (FEW_NUMBERS), the
# page is sorted from their calls right away. In more, the matches are counted first (from
# ix_call_tenant_remote, up to the bound): when they are within the bound, the page is sorted
# from them by the database (at most COUNT_BOUND index entries); past it, the firm's calls are
# read newest first by the history index, each tested against the numbers found, until the page
# is full (at least COUNT_BOUND of the firm's calls match, so a page of 50 comes within the
# firm's calls x 51 / 1,001 calls, ~5 %; on 1,000,000 calls a few hundred to a few thousand),
# unless the page is deeper than this by number (then every match is sorted, as within the bound).
WALK_MAX_OFFSET = 500
# In at most this many numbers (a few calls each: the calls of one client's number, or of a long
# fragment), the page is sorted from their calls at once and counted only when it is full.
FEW_NUMBERS = 20


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


# Built once: the statement is the same for every search but its values. The firm's region
# comes with the numbers (a typed number's E.164 form depends on it): one round trip, not two.
_NUMBERS_HOLDING = (
    sa.select(CallNumber.number)
    .where(
        owned_by(CallNumber, sa.bindparam("tenant_id")),  # type: ignore[arg-type]
        CallNumber.suffix >= sa.bindparam("low"),
        CallNumber.suffix < sa.bindparam("high"),
    )
    .distinct()
    .limit(sa.bindparam("limit"))
)
_HOLDING = _NUMBERS_HOLDING.subquery("holding")
_DICTIONARY = (
    sa.select(Tenant.region, _HOLDING.c.number)
    .select_from(Tenant)
    .outerjoin(_HOLDING, sa.true())
    .where(Tenant.id == sa.bindparam("tenant_id"))
)
# PostgreSQL: the numbers as one array in one row. Hundreds of rows cost more to read than the
# database takes to find them (p95 2.0-2.8 -> 0.3-1.6 ms on the 1M-call bench set).
_DICTIONARY_ARRAY = sa.select(Tenant.region, sa.func.array(_NUMBERS_HOLDING.scalar_subquery())).where(
    Tenant.id == sa.bindparam("tenant_id")
)
_REGION = sa.select(Tenant.region).where(Tenant.id == sa.bindparam("tenant_id"))


def _region_and_numbers(session: Session, tenant_id: int, fragment: str) -> tuple[str, list[str] | None]:
    """The firm's region, and its numbers (``coalesce(remote_e164, remote_number)``) holding
    the fragment, from the suffixes of :class:`CallNumber`: None when the fragment is shorter
    than the dictionary keeps or is in too many numbers (then the scan answers)."""
    params = {"tenant_id": tenant_id, "low": fragment, "high": fragment + AFTER_DIGITS, "limit": MAX_DICTIONARY_NUMBERS + 1}
    if len(fragment) < MIN_FRAGMENT:
        rows, found = session.execute(_REGION, params).all(), None
    elif _on_postgres(session):
        rows = session.execute(_DICTIONARY_ARRAY, params).all()
        found = list(rows[0][1]) if rows else []
    else:
        rows = session.execute(_DICTIONARY, params).all()
        found = [number for _, number in rows if number is not None]
    if not rows:
        raise NotFound("firm not found")  # every statement has a row of the firm while it exists
    return rows[0][0], (None if found is None or len(found) > MAX_DICTIONARY_NUMBERS else found)


def _on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _among(session: Session, column: Any, values: list[str]) -> sa.ColumnElement[bool]:
    """``column IN values``. On PostgreSQL as one array parameter (``= ANY``): the statement's
    text is then the same for any number of values, so psycopg prepares it once it has run a
    few times on a connection, where a list of a few hundred parameters was parsed and planned
    anew for every search (as many texts as list lengths)."""
    if _on_postgres(session):
        return column == sa.any_(sa.bindparam(None, values, type_=sa.ARRAY(sa.String)))
    return column.in_(values)


def _number_branches(
    session: Session, tenant_id: int, number: str
) -> tuple[list[list[sa.ColumnElement[bool]]], list[str] | None, str | None]:
    """The number filter as disjoint sets of conditions, whose matches together are the calls
    whose number holds the digits (or equals the number's E.164 form in the firm's region); the
    dictionary's numbers they look up (None: the scan); and the number's E.164 form."""
    fragment = _number_fragment(number)
    region, numbers = _region_and_numbers(session, tenant_id, fragment)
    e164 = phones.try_normalise(number, region)
    if numbers is None:
        return [[_number_condition(fragment, e164)]], None, e164
    # coalesce(remote_e164, remote_number) IN numbers, split so that each part is a lookup of
    # ix_call_tenant_remote (tenant_id, remote_e164[, remote_number]): SQLite would scan the
    # firm's index for the OR of both.
    branches = []
    e164s = sorted({*numbers, e164} if e164 else numbers)
    if e164s:
        branches.append([_among(session, Call.remote_e164, e164s)])
    if numbers:
        branches.append([Call.remote_e164.is_(None), _among(session, Call.remote_number, numbers)])
    return branches, numbers, e164


def _number_membership(session: Session, numbers: list[str], e164: str | None) -> sa.ColumnElement[bool]:
    """The same calls as :func:`_number_branches`'s lookups, as one test of a call's row (for
    the walk of the history index): its number among those found, or its E.164 form the query's."""
    member = _among(session, sa.func.coalesce(Call.remote_e164, Call.remote_number), numbers)
    return sa.or_(member, Call.remote_e164 == e164) if e164 else member


def _count_up_to(session: Session, parts: list[sa.Select[Any]], bound: int) -> int:
    """How many rows the union of ``parts`` has, counted up to ``bound`` + 1."""
    if not parts:
        return 0
    union = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    return session.execute(sa.select(sa.func.count()).select_from(union.limit(bound + 1).subquery())).scalar_one()


def _in_order(rows: Any, newest_first: bool) -> tuple[Any, Any]:
    """The history's order over the (started_at, id) of a table, subquery or CTE."""
    if newest_first:
        return rows.c.started_at.desc(), rows.c.id.desc()
    return rows.c.started_at.asc(), rows.c.id.asc()


def _counted_page(
    session: Session,
    lookups: list[sa.Select[Any]],
    after_of: Callable[[Any, Any], sa.ColumnElement[bool] | None],
    newest_first: bool,
    limit: int,
    offset: int,
    bound: int,
) -> tuple[int | None, list[int]]:
    """A number search's matches counted up to ``bound`` + 1 and, from those same rows, the
    page's ids (past the cursor, sorted): one statement and one read of the numbers' index
    entries, where the count and the page took one each.

    Returns the count (None when the page is empty: no row came back to carry it) and the ids.
    Past the bound, the matches read are a sample, so the ids are not the page."""
    union = lookups[0] if len(lookups) == 1 else sa.union_all(*lookups)
    # Materialised: PostgreSQL and SQLite would otherwise read it once per reference.
    matched = union.limit(bound + 1).cte("matched").prefix_with("MATERIALIZED")
    found = sa.select(sa.func.count()).select_from(matched).scalar_subquery()
    page = sa.select(matched.c.id, found)
    past = after_of(matched.c.started_at, matched.c.id)
    if past is not None:
        page = page.where(past)
    rows = session.execute(page.order_by(*_in_order(matched, newest_first)).limit(limit).offset(offset)).all()
    return (rows[0][1] if rows else None), [row[0] for row in rows]


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

    def after_of(started_at: Any, call_id: Any) -> sa.ColumnElement[bool] | None:
        """The rows past the cursor's call, in the order paged."""
        if not keyset:
            return None
        cursor_at = sa.tuple_(sa.literal(keyset[0], Call.started_at.type), sa.literal(keyset[1]))
        by_start = sa.tuple_(started_at, call_id)
        return by_start < cursor_at if newest_first else by_start > cursor_at

    after = after_of(Call.started_at, Call.id)
    # A number search counts up to COUNT_BOUND matches (bound); the other filters count them all.
    bound: int | None = None
    lookups: list[sa.Select[Any]] | None = None
    found: int | None = None  # the dictionary's matches, counted up to the bound + 1
    walk = False
    id_list: list[int] | None = None
    if filters is not None and filters.number is not None and filters.number.strip():
        branches, numbers, e164 = _number_branches(session, tenant_id, filters.number)
        bound = COUNT_BOUND
        if numbers is not None:
            # The numbers' lookups drive: the other filters are only tested on their calls
            # (SQLite, without statistics, would otherwise read an agent's or a period's calls
            # by their own index). coalesce(…, false) keeps a condition out of index choice.
            others = [conds[0], *(sa.func.coalesce(c, sa.false()) for c in conds[1:])]
            lookups = [sa.select(Call.id, Call.started_at).where(*others, *branch) for branch in branches]
            if len(numbers) > FEW_NUMBERS:
                found, id_list = _counted_page(session, lookups, after_of, newest_first, page_size + 1, offset, bound)
                if found is None:
                    # An empty page carries no count: only a page past the first can be empty
                    # while there are matches.
                    found = _count_up_to(session, lookups, bound) if keyset or offset else 0
                if found > bound:
                    id_list = None  # sorted from a sample of the matches: not the page
                walk = found > bound and offset <= WALK_MAX_OFFSET
            if walk:
                # Past the bound: the history index read in order, each call tested against the
                # numbers (the other filters out of index choice likewise), until the page is full.
                conds = [*others, _number_membership(session, numbers, e164)]
        else:
            # A fragment in most numbers: paged like any filter (the history index read in
            # order until the page is full, the count from ix_call_tenant_remote).
            conds.append(branches[0][0])
    if id_list is not None:
        pass  # within the bound: the page's ids came with the count
    elif lookups is not None and not walk:
        # In few numbers (or a deep page by number): the numbers' calls, looked up number by
        # number and sorted by the database; only the page comes back.
        if lookups and found != 0:
            parts = [q.where(after) for q in lookups] if after is not None else lookups
            matched = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery()
            in_order = _in_order(matched, newest_first)
            id_list = list(session.execute(sa.select(matched.c.id).order_by(*in_order).limit(page_size + 1).offset(offset)).scalars())
        else:
            id_list = []
    else:
        # Pick the page's ids first: (tenant_id, started_at, id) read forwards or backwards
        # gives either order from the index alone, so a deep OFFSET skips index entries
        # instead of whole rows; the joins then run for the page's rows only.
        ids = sa.select(Call.id).where(*conds)
        if after is not None:
            ids = ids.where(after)
        ids = ids.order_by(*_in_order(Call.__table__, newest_first)).limit(page_size + 1).offset(offset)
        id_list = list(session.execute(ids).scalars())
    lower_bound = False
    if len(id_list) <= page_size and (id_list or offset == 0) and not keyset:
        # The last page (or the only one) by number: the matches are the ones before it
        # and the ones on it, so counting them all again would tell nothing new.
        count = offset + len(id_list)
    elif bound is None:
        count = session.execute(sa.select(sa.func.count()).select_from(Call).where(*conds)).scalar_one()
    else:
        # Counted up to the bound: a common group of digits is in tens of thousands of calls.
        if found is None:
            found = _count_up_to(session, lookups if lookups is not None else [sa.select(Call.id).where(*conds)], bound)
        lower_bound = found > bound
        count = min(found, bound)
    has_more = len(id_list) > page_size
    id_list = id_list[:page_size]
    # No ORDER BY here: with one, SQLite walks the history index instead of fetching 50 rowids.
    rows = (
        session.connection().execute(
            _PAGE_ROWS_ANY if _on_postgres(session) else _PAGE_ROWS,
            {"page_tenant_id": tenant_id, "page_ids": id_list},
        ).all()
        if id_list
        else []
    )
    position = {call_id: i for i, call_id in enumerate(id_list)}
    data = sorted((_public(r) for r in rows), key=lambda call: position[call.id])
    next_cursor = encode_cursor(_CURSOR_TAGS[order], data[-1].started_at, data[-1].id) if has_more and data else None
    return CallsPage(
        data=data, count=count, count_is_lower_bound=lower_bound, next_cursor=next_cursor, page=page, page_size=page_size
    )
