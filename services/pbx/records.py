"""What every CDR source hands the ledger: one :class:`CdrRecord` per leg, as the PBX wrote it.

A PBX writes its call records per *leg*, not per call (Asterisk, and so the UCM6301: one
record per channel pair; a ring group that rang three agents writes three; a transfer
writes a record for the transferee's new leg). Every leg carries the PBX's own unique id
(``unique_id``, the idempotency key of a leg) and the id that links the legs of one call
(``linked_id``). Sources normalise their format into this one shape; the ledger
(:mod:`services.pbx.ledger`) groups legs by ``linked_id`` into one ``Call`` row with its
``CallLeg`` rows. Sources never write to the database.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class LegDisposition(str, enum.Enum):
    """How one leg ended, in the PBX's words (Asterisk/UCM ``disposition``)."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    # The caller (or the ring group, once someone else answered) stopped the ringing.
    CANCELED = "CANCELED"


class LegDirection(str, enum.Enum):
    """Which way the *call* this leg belongs to crossed the firm's edge."""

    INBOUND = "INBOUND"      # from a trunk (an outside caller) to the firm
    OUTBOUND = "OUTBOUND"    # from an extension out through a trunk
    INTERNAL = "INTERNAL"    # extension to extension


@dataclass(frozen=True)
class CdrRecord:
    """One leg of one call, normalised. Times are aware UTC datetimes.

    ``position`` orders records within their source and is what the reconciler's
    watermark stores (UCM: ``AcctId``; lab: its leg row id); a source's catch-up returns
    records with ``position`` greater than the watermark, in ``position`` order.
    """

    position: int
    unique_id: str
    linked_id: str
    direction: LegDirection
    # The outside party's number as the PBX saw it (caller of an inbound call, callee of
    # an outbound one); the extension's own number for an internal call's far end.
    remote_number: str
    # The agent's extension on this leg (the one rung, answering or dialling); None for a
    # leg with no extension (a caller hanging up in the IVR, a trunk-to-trunk leg).
    extension: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime
    disposition: LegDisposition
    # The DID called (inbound), when known.
    did: str = ""
    # The SIP Call-ID of this leg, when the source knows it (the lab does; the UCM's CDR
    # does not): the strongest key to the softphone's own row.
    sip_call_id: str | None = None
    caller_name: str = ""
    # The extension that transferred this leg to ``extension`` (blind transfer), if any.
    transferred_by: str | None = None
    # Recording files of this leg as the source names them (``CdrSource.open_recording``).
    recording_files: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ring_seconds(self) -> int:
        end = self.answered_at or self.ended_at
        return max(0, round((end - self.started_at).total_seconds()))

    @property
    def talk_seconds(self) -> int:
        if self.answered_at is None:
            return 0
        return max(0, round((self.ended_at - self.answered_at).total_seconds()))


class CdrSourceError(Exception):
    """The source could not be read. ``code`` is stable (``auth_failed``, ``unreachable``,
    ``bad_response``, ``empty_page``); ``message`` is a sentence for the PBX settings page
    and the feed's health line and never contains a password, cookie or token."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CdrSource(Protocol):
    """Where a firm's CDRs come from (the UCM6301 over HTTPS, or the PBX lab's files)."""

    #: "ucm" or "lab": stored with the feed's health.
    kind: str

    def catch_up(self, after_position: int, *, since: datetime | None = None) -> Iterator[CdrRecord]:
        """Every record with ``position > after_position`` (and started at or after
        ``since`` when given), oldest first, paging as the source needs. Blocking: the
        reconciler runs it in a thread. Raises :class:`CdrSourceError`."""
        ...

    def live(self) -> AsyncIterator[CdrRecord]:
        """Records as the PBX writes them (UCM: "CDR real-time output" over TCP; lab: the
        accounting file watched). Ends or raises :class:`CdrSourceError` when the feed is
        lost; the reconciler then catches up and opens it again."""
        ...

    def open_recording(self, name: str) -> Iterable[bytes]:
        """The bytes of one recording file named in a record's ``recording_files``,
        streamed in chunks. Raises :class:`CdrSourceError` (``not_found`` when gone)."""
        ...


__all__ = [
    "CdrRecord",
    "CdrSource",
    "CdrSourceError",
    "LegDirection",
    "LegDisposition",
]
