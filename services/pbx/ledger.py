# Just over 400 lines: ingest is one transaction (legs, calls, recordings, folds) read top to bottom; its helpers are here beside it.
"""The call ledger: the PBX's records (legs) merged into the firm's call log, one row per call.

:func:`ingest` takes a batch of :class:`~services.pbx.records.CdrRecord` (one per leg) and:

- upserts each leg as a :class:`CallLeg`, keyed by (firm, the PBX's ``unique_id``): a record
  read twice (live feed and catch-up, a restart) updates the same row, never adds one;
- groups the legs by ``linked_id`` into ONE :class:`Call` (``Call.pbx_linked_id``), found or
  merged with the softphone's rows by the rules of :mod:`services.pbx.matching`, and recomputes
  it from all its legs (those of the batch and those stored before);
- adds a :class:`CallRecording` (``source_file`` set, ``storage_key`` NULL until
  :mod:`services.pbx.recordings` fetches it) for each of a record's recording files;
- (the statistics' rollups follow by themselves: database triggers on the call and leg
  tables, :mod:`services.models.call_stats_triggers`).

A call nobody's browser saw (no agent signed in) gets a row of its own: a MISSED inbound
call matched to the client by number, in history, exports, the REST API and the dashboard.

Framework-free; flushes, never commits (the reconciler commits each batch with its watermark).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from services import callbacks, phones
from services.clients import match_numbers
from services.db import dialect_insert
from services.models import (
    Call,
    CallDirection,
    CallLeg,
    CallNote,
    CallRecording,
    CallStatus,
    LegKind,
    SipExtension,
    Tenant,
    utcnow,
)
from services.pbx.matching import Group, find_linked, find_rows
from services.pbx.records import CdrRecord, LegDirection, LegDisposition
from services.tenancy import owned_by

_call = Call.__table__
_leg = CallLeg.__table__
_recording = CallRecording.__table__
_CHUNK = 500

# Parsing a number costs ~0.5 ms (phonenumbers), more than the rest of a leg's work; a firm's
# callers repeat, so each (number, region) is parsed once per process.
_normalise = lru_cache(maxsize=100_000)(phones.try_normalise)


@dataclass
class IngestResult:
    legs_inserted: int = 0  # records never stored before (what "records today" counts)
    legs_updated: int = 0
    calls_created: int = 0
    calls_merged: int = 0  # calls kept in a row the softphone (or an earlier batch) had made
    rows_folded: int = 0  # extra softphone rows of one call folded into its row
    recordings_added: int = 0
    call_ids: list[int] = field(default_factory=list)


# Which source wins, field by field, when the PBX's legs meet the softphone's row. Applied in
# _call_values (the PBX's side: only the columns it returns are written) and _fold (the user's
# side: what folded rows bring along).
#
# | field                                   | winner    | why                                            |
# |-----------------------------------------|-----------|------------------------------------------------|
# | started/answered/ended_at               | PBX       | one clock, the switch's; browsers drift        |
# | ring_seconds, talk_seconds              | PBX       | from its timestamps; talk = sum of legs' talk  |
# | status                                  | PBX       | it saw every leg, the browser only its own     |
# | agent_user_id, extension (answered)     | PBX       | the agent who answered first                   |
# | agent_user_id, extension (unanswered)   | softphone | the row's agent (or a folded row's); else none |
# | direction                               | PBX       | except INTERNAL calls: the row's own           |
# | remote_number / remote_e164             | softphone | as the agent saw it; PBX's for a new row       |
# | client_id                               | user      | chosen by hand or matched at logging; the      |
# |                                         |           | PBX's number match only fills an empty one    |
# | notes, case_id, note entries            | user      | never touched; folded rows' are kept           |
# | sip_call_id, hangup_cause               | softphone | the PBX has none; a folded row's Call-ID fills |
# |                                         |           | an empty one (its late events find the call)   |


def _seconds(a: datetime, b: datetime) -> int:
    return max(0, round((b - a).total_seconds()))


def _status(direction: CallDirection, legs: list[dict[str, Any]]) -> CallStatus:
    if any(leg["answered_at"] is not None for leg in legs):
        return CallStatus.COMPLETED
    if direction == CallDirection.INBOUND:
        return CallStatus.MISSED
    dispositions = {leg["disposition"] for leg in legs}
    if LegDisposition.BUSY.value in dispositions:
        return CallStatus.BUSY
    if dispositions & {LegDisposition.NO_ANSWER.value, LegDisposition.CANCELED.value}:
        return CallStatus.NO_ANSWER
    return CallStatus.FAILED


def leg_kind(transferred_by: str | None, answered_at: datetime | None) -> LegKind:
    """A leg's kind: a transfer created it, else it was answered, else it only rang."""
    if transferred_by:
        return LegKind.TRANSFER
    return LegKind.ANSWER if answered_at is not None else LegKind.RING


def _leg_values(tenant_id: int, record: CdrRecord, agents: dict[str, int], now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "unique_id": record.unique_id,
        "position": record.position,
        "extension": record.extension,
        "agent_user_id": agents.get(record.extension or ""),
        "started_at": record.started_at,
        "answered_at": record.answered_at,
        "ended_at": record.ended_at,
        "ring_seconds": record.ring_seconds,
        "talk_seconds": record.talk_seconds,
        "disposition": record.disposition.value,
        "transferred_by": record.transferred_by,
        "kind": leg_kind(record.transferred_by, record.answered_at).value,
        "sip_call_id": record.sip_call_id,
        "created_at": now,
    }


def _call_values(group: Group, legs: list[dict[str, Any]], row: Any | None, now: datetime) -> dict[str, Any]:
    """The PBX's side of the call's row (see the table above), from all its legs."""
    kinds = {r.direction for r in group.records}
    if LegDirection.INBOUND in kinds:
        direction = CallDirection.INBOUND
    elif LegDirection.OUTBOUND in kinds or row is None:
        direction = CallDirection.OUTBOUND
    else:  # an internal call keeps the side its row was logged from
        direction = CallDirection(row.direction)
    started = min(leg["started_at"] for leg in legs)
    answered_legs = sorted((leg for leg in legs if leg["answered_at"] is not None), key=lambda leg: leg["answered_at"])
    ended = max(leg["ended_at"] for leg in legs)
    answered = answered_legs[0]["answered_at"] if answered_legs else None
    values: dict[str, Any] = {
        "direction": direction,
        "status": _status(direction, legs),
        "started_at": started,
        "answered_at": answered,
        "ended_at": ended,
        "ring_seconds": _seconds(started, answered or ended),
        "talk_seconds": sum(leg["talk_seconds"] for leg in legs) if answered else None,
        "pbx_linked_id": group.linked_id,
        "pbx_confirmed_at": now,
        "updated_at": now,
    }
    if answered_legs:
        values["agent_user_id"] = answered_legs[0]["agent_user_id"]
        values["extension"] = answered_legs[0]["extension"]
    return values


def _context(session: Session, tenant_id: int, records: Sequence[CdrRecord]) -> tuple[str, dict[str, int]]:
    region = session.execute(sa.select(Tenant.region).where(Tenant.id == tenant_id)).scalar_one()
    extensions = sorted({r.extension for r in records if r.extension} | {r.transferred_by for r in records if r.transferred_by})
    agents: dict[str, int] = {}
    for i in range(0, len(extensions), _CHUNK):
        agents.update(
            session.execute(
                sa.select(SipExtension.extension, SipExtension.user_id).where(
                    owned_by(SipExtension, tenant_id), SipExtension.extension.in_(extensions[i : i + _CHUNK])
                )
            ).all()
        )
    return region, agents


def _stored_legs(session: Session, tenant_id: int, column: Any, values: list[Any]) -> list[Any]:
    rows: list[Any] = []
    for i in range(0, len(values), _CHUNK):
        rows += session.execute(sa.select(_leg).where(owned_by(_leg, tenant_id), column.in_(values[i : i + _CHUNK]))).all()
    return rows


def ingest(*, session: Session, tenant_id: int, records: Sequence[CdrRecord], now: datetime | None = None) -> IngestResult:
    """Merge a batch of the PBX's leg records into the firm's call log; idempotent.

    Reading the same records again (in any order, split in other batches) leaves the ledger as
    it was: legs are keyed by the PBX's unique id and each call is recomputed from all its legs.
    """
    result = IngestResult()
    latest: dict[str, CdrRecord] = {}
    for record in sorted(records, key=lambda r: r.position):
        latest[record.unique_id] = record
    if not latest:
        return result
    now = now or utcnow()
    batch = list(latest.values())
    region, agents = _context(session, tenant_id, batch)
    known: set[str] = set()
    ids = list(latest)
    for i in range(0, len(ids), _CHUNK):
        known.update(
            session.execute(
                sa.select(_leg.c.unique_id).where(owned_by(_leg, tenant_id), _leg.c.unique_id.in_(ids[i : i + _CHUNK]))
            ).scalars()
        )

    by_linked: dict[str, list[CdrRecord]] = {}
    for record in batch:
        by_linked.setdefault(record.linked_id, []).append(record)
    groups: dict[str, Group] = {}
    numbers: dict[str, str] = {}
    for linked_id, legs in by_linked.items():
        number = next((r.remote_number for r in sorted(legs, key=lambda r: r.started_at) if r.remote_number), "")
        answered = sorted((r for r in legs if r.answered_at is not None), key=lambda r: r.answered_at)
        numbers[linked_id] = number
        groups[linked_id] = Group(
            linked_id=linked_id,
            records=legs,
            remote_e164=_normalise(number, region) if number else None,
            # Rule 3 looks for the rows of agents on legs seen for the first time only: an agent
            # whose row was folded when their leg came is not looked up again (re-reading the
            # records, or a later leg of the same call, folds nothing more).
            agents={agents[r.extension] for r in legs if r.extension in agents and r.unique_id not in known},
            extensions={r.extension for r in legs if r.extension and r.unique_id not in known},
            first_answerer=agents.get(answered[0].extension or "") if answered else None,
        )
    find_linked(session, tenant_id, groups)
    # Legs stored before, of the calls found by their linked id: the call is recomputed from
    # all of them, and rule 3's time window starts at the earliest.
    stored: dict[int, list[dict[str, Any]]] = {}
    linked_ids = [g.linked_row.id for g in groups.values() if g.linked_row is not None]
    for row in _stored_legs(session, tenant_id, _leg.c.call_id, linked_ids):
        stored.setdefault(row.call_id, []).append(dict(row._mapping))
    for group in groups.values():
        for leg in stored.get(group.linked_row.id, []) if group.linked_row is not None else []:
            if group.stored_start is None or leg["started_at"] < group.stored_start:
                group.stored_start = leg["started_at"]
    find_rows(session, tenant_id, groups, numbers)

    clients = match_numbers(session=session, tenant_id=tenant_id, numbers=[g.remote_e164 for g in groups.values() if g.remote_e164])
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    leg_rows: dict[str, list[dict[str, Any]]] = {}
    for group in groups.values():
        row = group.primary()
        legs = {leg["unique_id"]: leg for leg in stored.get(row.id, [])} if row is not None else {}
        new_legs = [_leg_values(tenant_id, r, agents, now) for r in group.records]
        legs.update({leg["unique_id"]: leg for leg in new_legs})
        leg_rows[group.linked_id] = new_legs
        values = _call_values(group, list(legs.values()), row, now)
        if row is None:
            values.update(
                tenant_id=tenant_id,
                remote_number=numbers[group.linked_id][:64],
                remote_e164=group.remote_e164,
                client_id=clients.get(group.remote_e164 or ""),
                notes="",
                agent_user_id=values.get("agent_user_id"),
                extension=values.get("extension"),
            )
            inserts.append(values)
            continue
        if row.client_id is None and group.remote_e164 in clients:
            values["client_id"] = clients[group.remote_e164]
        folded = group.absorbed()
        if folded:
            _fold(session, tenant_id, row, folded, values)
            result.rows_folded += len(folded)
        values["b_id"] = row.id
        updates.append(values)
        result.calls_merged += 1

    call_of: dict[str, int] = {}
    if inserts:
        keys = sorted({k for v in inserts for k in v})
        rows = [{k: v.get(k) for k in keys} for v in inserts]
        for call_id, linked_id in session.execute(
            sa.insert(_call).returning(_call.c.id, _call.c.pbx_linked_id), rows
        ):
            call_of[linked_id] = call_id
        result.calls_created = len(inserts)
    if updates:
        for keys, rows in _by_keys(updates).items():
            session.execute(
                sa.update(_call)
                .where(_call.c.id == sa.bindparam("b_id"))
                .values({k: sa.bindparam(k) for k in keys if k != "b_id"}),
                rows,
            )
        for values in updates:
            call_of[values["pbx_linked_id"]] = values["b_id"]
    # Missed inbound calls join the callback queue (services.callbacks; once per call).
    for values in (*inserts, *updates):
        if values.get("status") == CallStatus.MISSED:
            callbacks.on_call_missed(session, tenant_id, call_of[values["pbx_linked_id"]])

    legs_out: list[dict[str, Any]] = []
    recordings: list[dict[str, Any]] = []
    for group in groups.values():
        call_id = call_of[group.linked_id]
        for leg, record in zip(leg_rows[group.linked_id], group.records):
            leg["call_id"] = call_id
            legs_out.append(leg)
            for name in record.recording_files:
                recordings.append({"tenant_id": tenant_id, "call_id": call_id, "source_file": name[:512], "url": "", "created_at": now})
    upsert = dialect_insert(session, _leg)
    changing = ("call_id", "position", "extension", "agent_user_id", "started_at", "answered_at", "ended_at",
                "ring_seconds", "talk_seconds", "disposition", "transferred_by", "kind", "sip_call_id")
    session.execute(
        upsert.on_conflict_do_update(index_elements=["tenant_id", "unique_id"], set_={c: upsert.excluded[c] for c in changing}),
        legs_out,
    )
    result.legs_inserted = sum(1 for leg in legs_out if leg["unique_id"] not in known)
    result.legs_updated = len(legs_out) - result.legs_inserted
    if recordings:
        existing = set()
        names = [r["source_file"] for r in recordings]
        for i in range(0, len(names), _CHUNK):
            existing |= set(
                session.execute(
                    sa.select(_recording.c.source_file).where(
                        owned_by(_recording, tenant_id), _recording.c.source_file.in_(names[i : i + _CHUNK])
                    )
                ).scalars()
            )
        fresh = {r["source_file"]: r for r in recordings if r["source_file"] not in existing}
        if fresh:
            session.execute(
                dialect_insert(session, _recording).on_conflict_do_nothing(index_elements=["tenant_id", "source_file"]),
                list(fresh.values()),
            )
        result.recordings_added = len(fresh)
    session.flush()
    # The writes above bypass the ORM: objects the caller loaded before are stale now.
    session.expire_all()
    result.call_ids = sorted(set(call_of.values()))
    return result


def _by_keys(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        out.setdefault(tuple(sorted(row)), []).append(row)
    return out


def _fold(session: Session, tenant_id: int, row: Any, folded: list[Any], values: dict[str, Any]) -> None:
    """Fold the other softphone rows of this call into ``row`` (the user's side of the table
    above): their note entries and recordings move over, their notes text is appended, their
    case, client, agent (of an unanswered call) and SIP Call-ID fill the row's when empty (the
    Call-ID so that a late event of that softphone still finds the call); then they are deleted."""
    ids = [r.id for r in folded]
    session.execute(sa.update(CallNote).where(owned_by(CallNote, tenant_id), CallNote.call_id.in_(ids)).values(call_id=row.id))
    session.execute(
        sa.update(CallRecording).where(owned_by(CallRecording, tenant_id), CallRecording.call_id.in_(ids)).values(call_id=row.id)
    )
    notes = [n for n in [row.notes, *(r.notes for r in folded)] if n and n.strip()]
    if len(notes) > (1 if row.notes and row.notes.strip() else 0):
        values["notes"] = "\n\n".join(notes)
    if row.case_id is None:
        case = next((r.case_id for r in folded if r.case_id is not None), None)
        if case is not None:
            values["case_id"] = case
    if row.client_id is None and "client_id" not in values:
        client = next((r.client_id for r in folded if r.client_id is not None), None)
        if client is not None:
            values["client_id"] = client
    if row.sip_call_id is None:
        sip = next((r.sip_call_id for r in folded if r.sip_call_id), None)
        if sip is not None:
            values["sip_call_id"] = sip
    if row.agent_user_id is None and "agent_user_id" not in values:
        agent = next((r for r in folded if r.agent_user_id is not None), None)
        if agent is not None:
            values.update(agent_user_id=agent.agent_user_id, extension=agent.extension)
    # Deleted before the row's update (same statement order): the Call-ID moves without a clash.
    session.execute(sa.delete(_call).where(owned_by(_call, tenant_id), _call.c.id.in_(ids)))


def call_of_sip_leg(*, session: Session, tenant_id: int, sip_call_id: str, extension: str) -> int | None:
    """The call that already holds the PBX's leg with this SIP Call-ID on ``extension``, if
    any: a softphone event arriving after the ledger merged its call finds its row here
    instead of logging the call a second time."""
    return session.execute(
        sa.select(_leg.c.call_id).where(
            owned_by(_leg, tenant_id), _leg.c.sip_call_id == sip_call_id, _leg.c.extension == extension
        ).limit(1)
    ).scalar_one_or_none()


__all__ = ["IngestResult", "call_of_sip_leg", "ingest"]
