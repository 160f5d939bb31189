"""Which rows of the call log one PBX call (its legs, grouped by linked id) is.

The softphone logs a row per agent per call as it happens (keyed by
:func:`services.call_center.softphone.leg_key`, ``"<Call-ID>;in=<ext>"``); the PBX writes its
records when the call ends. The ledger merges them so each call is one row. The rules, in
order, for one PBX call (every leg of one ``linked_id`` in the batch):

1. **SIP Call-ID**: a row whose ``sip_call_id`` is the Call-ID of one of the legs (as is, or
   as the softphone's per-agent key of that leg's extension) and that has no linked id yet.
2. **Linked id**: the row whose ``pbx_linked_id`` is this call's (merged earlier: a late leg,
   a record read twice).
3. **Agent, number, time**: a row of the same agent (its extension, or the user behind the
   extension) and the same remote number (E.164 when it normalises, as typed otherwise) that
   started within :data:`WINDOW` of the call and has no linked id yet; per agent the closest
   in time. For PBXs whose records carry no Call-ID (the UCM6301): when the records do carry
   one, a row that has another Call-ID is never taken by this rule. The agents are those of
   the legs the ledger sees for the first time (an agent's row is looked for once, when
   their leg comes), the start is the call's, over all its legs.

The row found by rule 2 is the call's row; otherwise the row of the agent who answered
first, otherwise the oldest. Every other row found (the ring group's other agents, each of
whose softphones logged the call) is folded into it, so the call stays one row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services.models import Call
from services.pbx.records import CdrRecord
from services.tenancy import owned_by

WINDOW = timedelta(seconds=10)
_CHUNK = 500

# What the ledger reads of an existing row.
ROW_COLUMNS = (
    Call.id,
    Call.agent_user_id,
    Call.extension,
    Call.direction,
    Call.status,
    Call.remote_number,
    Call.remote_e164,
    Call.client_id,
    Call.case_id,
    Call.notes,
    Call.started_at,
    Call.sip_call_id,
    Call.pbx_linked_id,
)


@dataclass
class Group:
    """One PBX call in a batch: its records, and the rows of the log that are it."""

    linked_id: str
    records: list[CdrRecord]
    remote_e164: str | None
    agents: set[int]
    extensions: set[str]
    first_answerer: int | None
    linked_row: Any = None  # rule 2
    rows: dict[int, Any] = field(default_factory=dict)  # rules 1 and 3, by id
    stored_start: datetime | None = None  # the earliest start of the legs stored before

    @property
    def start(self) -> datetime:
        return min([r.started_at for r in self.records] + ([self.stored_start] if self.stored_start else []))

    def primary(self) -> Any | None:
        """The row the call is kept in (see the module docstring)."""
        if self.linked_row is not None:
            return self.linked_row
        if not self.rows:
            return None
        rows = sorted(self.rows.values(), key=lambda r: r.id)
        for row in rows:
            if self.first_answerer is not None and row.agent_user_id == self.first_answerer:
                return row
        return rows[0]

    def absorbed(self) -> list[Any]:
        keep = self.primary()
        return [r for r in self.rows.values() if keep is None or r.id != keep.id]


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def sip_keys(record: CdrRecord) -> list[str]:
    """The ``sip_call_id`` values a softphone row of this leg can have (rule 1)."""
    if not record.sip_call_id:
        return []
    keys = [record.sip_call_id]
    if record.extension:
        keys += [f"{record.sip_call_id};in={record.extension}", f"{record.sip_call_id};out={record.extension}"]
    return keys


def find_linked(session: Session, tenant_id: int, groups: dict[str, Group]) -> None:
    """Rule 2: each group's row by its linked id (``linked_row``), when the ledger knows the call."""
    for part in _chunks(list(groups)):
        for row in session.execute(sa.select(*ROW_COLUMNS).where(owned_by(Call, tenant_id), Call.pbx_linked_id.in_(part))):
            groups[row.pbx_linked_id].linked_row = row


def find_rows(session: Session, tenant_id: int, groups: dict[str, Group], numbers: dict[str, str]) -> None:
    """Fill each group's ``rows`` by rules 1 and 3, after :func:`find_linked` (whose legs
    stored before set the call's start). ``numbers`` maps each linked id to the remote number
    the PBX gave."""
    taken: set[int] = {g.linked_row.id for g in groups.values() if g.linked_row is not None}

    # Rule 1: the SIP Call-ID.
    by_key: dict[str, str] = {}
    for group in groups.values():
        for record in group.records:
            for key in sip_keys(record):
                by_key[key] = group.linked_id
    keys = list(by_key)
    for part in _chunks(keys):
        for row in session.execute(
            sa.select(*ROW_COLUMNS).where(owned_by(Call, tenant_id), Call.sip_call_id.in_(part), Call.pbx_linked_id.is_(None))
        ):
            if row.id not in taken:
                groups[by_key[row.sip_call_id]].rows[row.id] = row
                taken.add(row.id)

    # Rule 3: the same agent and number, started within the window.
    wanted = [g for g in groups.values() if g.agents or g.extensions]
    if not wanted:
        return
    lo = min(g.start for g in wanted) - WINDOW
    hi = max(g.start for g in wanted) + WINDOW
    e164s = sorted({g.remote_e164 for g in wanted if g.remote_e164})
    raws = sorted({numbers[g.linked_id] for g in wanted if not g.remote_e164 and numbers[g.linked_id]})
    if not e164s and not raws:
        return
    candidates: list[Any] = []
    for part_e, part_r in _number_parts(e164s, raws):
        same_number = sa.or_(
            Call.remote_e164.in_(part_e) if part_e else sa.false(),
            sa.and_(Call.remote_e164.is_(None), Call.remote_number.in_(part_r)) if part_r else sa.false(),
        )
        candidates += session.execute(
            sa.select(*ROW_COLUMNS).where(
                owned_by(Call, tenant_id),
                Call.pbx_linked_id.is_(None),
                Call.started_at >= lo,
                Call.started_at <= hi,
                same_number,
            )
        ).all()
    if not candidates:
        return
    by_number: dict[str, list[Any]] = {}
    for row in candidates:
        by_number.setdefault(row.remote_e164 or row.remote_number, []).append(row)
    for group in wanted:
        number = group.remote_e164 or numbers[group.linked_id]
        # A PBX that gives the Call-ID matched its softphone rows by rule 1: a row with another
        # Call-ID is another call, however close in time (a callback to the same number).
        carries_call_id = any(r.sip_call_id for r in group.records)
        best: dict[Any, Any] = {}
        for row in by_number.get(number, ()):
            if row.id in taken or (carries_call_id and row.sip_call_id):
                continue
            if abs(row.started_at - group.start) > WINDOW:
                continue
            who = row.agent_user_id if row.agent_user_id in group.agents else row.extension
            if who is None or (who not in group.agents and who not in group.extensions):
                continue
            current = best.get(who)
            if current is None or abs(row.started_at - group.start) < abs(current.started_at - group.start):
                best[who] = row
        for row in best.values():
            group.rows[row.id] = row
            taken.add(row.id)


def _number_parts(e164s: list[str], raws: list[str]) -> Iterable[tuple[list[str], list[str]]]:
    if not e164s and not raws:
        return
    size = max(len(e164s), len(raws))
    for i in range(0, size, _CHUNK):
        yield e164s[i : i + _CHUNK], raws[i : i + _CHUNK]
