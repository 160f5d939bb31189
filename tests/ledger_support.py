"""A PBX for the ledger's tests: leg records as a PBX writes them, kept in a real SQLite
accounting file, read back through the :class:`CdrSource` interface (catch-up by position,
a live feed that follows the file, recordings). It stands in for the PBX, not for the
ledger: every record the tests count goes through the same file both sides are counted from.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from services.pbx.records import CdrRecord, CdrSourceError, LegDirection, LegDisposition

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)
_uid = itertools.count(1)


def leg(
    linked_id: str,
    *,
    position: int = 0,
    unique_id: str | None = None,
    direction: LegDirection = LegDirection.INBOUND,
    remote: str = "+966501234567",
    extension: str | None = "1001",
    start: float = 0.0,
    answer: float | None = None,
    end: float = 10.0,
    disposition: LegDisposition | None = None,
    sip_call_id: str | None = None,
    transferred_by: str | None = None,
    recordings: tuple[str, ...] = (),
    t0: datetime = T0,
) -> CdrRecord:
    """One leg; times are seconds after ``t0``."""
    if disposition is None:
        disposition = LegDisposition.ANSWERED if answer is not None else LegDisposition.NO_ANSWER
    return CdrRecord(
        position=position,
        unique_id=unique_id or f"u{next(_uid)}",
        linked_id=linked_id,
        direction=direction,
        remote_number=remote,
        extension=extension,
        started_at=t0 + timedelta(seconds=start),
        answered_at=t0 + timedelta(seconds=answer) if answer is not None else None,
        ended_at=t0 + timedelta(seconds=end),
        disposition=disposition,
        sip_call_id=sip_call_id,
        transferred_by=transferred_by,
        recording_files=recordings,
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS leg (
  position INTEGER PRIMARY KEY AUTOINCREMENT, unique_id TEXT UNIQUE NOT NULL, linked_id TEXT NOT NULL,
  direction TEXT NOT NULL, remote TEXT NOT NULL, extension TEXT, started REAL NOT NULL, answered REAL,
  ended REAL NOT NULL, disposition TEXT NOT NULL, sip_call_id TEXT, transferred_by TEXT, recordings TEXT NOT NULL DEFAULT ''
)
"""


def _ts(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


@dataclass
class AccountingPbx:
    """The PBX's accounting file: :meth:`write` appends legs (their position is the row id)."""

    path: Path

    def __post_init__(self) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)

    def write(self, records: Iterable[CdrRecord]) -> None:
        with sqlite3.connect(self.path) as conn:
            conn.executemany(
                "INSERT INTO leg (unique_id, linked_id, direction, remote, extension, started, answered, ended, disposition,"
                " sip_call_id, transferred_by, recordings) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        r.unique_id, r.linked_id, r.direction.value, r.remote_number, r.extension, _ts(r.started_at),
                        _ts(r.answered_at), _ts(r.ended_at), r.disposition.value, r.sip_call_id, r.transferred_by,
                        "\n".join(r.recording_files),
                    )
                    for r in records
                ],
            )

    def rows(self, after: int = 0, limit: int = 1_000_000) -> list[CdrRecord]:
        with sqlite3.connect(self.path) as conn:
            found = conn.execute(
                "SELECT position, unique_id, linked_id, direction, remote, extension, started, answered, ended, disposition,"
                " sip_call_id, transferred_by, recordings FROM leg WHERE position > ? ORDER BY position LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            CdrRecord(
                position=p, unique_id=u, linked_id=li, direction=LegDirection(d), remote_number=rem, extension=ext,
                started_at=_dt(s), answered_at=_dt(a), ended_at=_dt(e), disposition=LegDisposition(disp),
                sip_call_id=sip, transferred_by=tb, recording_files=tuple(x for x in rec.split("\n") if x),
            )
            for p, u, li, d, rem, ext, s, a, e, disp, sip, tb, rec in found
        ]


@dataclass
class AccountingSource:
    """:class:`CdrSource` over an :class:`AccountingPbx` file. ``live_stop_after`` ends the
    live feed after that many records (a lost feed); ``live_skip`` drops those positions
    from the live feed (records the feed missed, for the catch-up to find)."""

    pbx: AccountingPbx
    kind: str = "lab"
    poll_seconds: float = 0.02
    page: int = 200
    live_stop_after: int | None = None
    live_skip: set[int] = field(default_factory=set)
    fail_catch_up: CdrSourceError | None = None

    def catch_up(self, after_position: int, *, since: datetime | None = None) -> Iterator[CdrRecord]:
        if self.fail_catch_up is not None:
            raise self.fail_catch_up
        while True:
            page = self.pbx.rows(after_position, self.page)
            if not page:
                return
            for record in page:
                if since is None or record.started_at >= since:
                    yield record
            after_position = page[-1].position

    async def live(self) -> AsyncIterator[CdrRecord]:
        last = self.pbx.rows(0)[-1].position if self.pbx.rows(0) else 0
        sent = 0
        while True:
            for record in self.pbx.rows(last):
                last = record.position
                if record.position in self.live_skip:
                    continue
                yield record
                sent += 1
                if self.live_stop_after is not None and sent >= self.live_stop_after:
                    self.live_stop_after = None
                    return
            await asyncio.sleep(self.poll_seconds)

    def open_recording(self, name: str) -> Iterable[bytes]:
        raise CdrSourceError("not_found", f"no recording {name}")
