"""The Grandstream UCM6301's CDR records (``cdrapi`` JSON and the "CDR real-time output"
push) read into :class:`~services.pbx.records.CdrRecord`. Used by :mod:`services.pbx.ucm`
(the adapter) and by the UCM emulator (dev/pbx_lab/ucm_emulator.py), which writes the same
shapes. What the published documentation leaves open is listed in services/pbx/ucm.py.

Shapes read:

- ``{"cdr_root": [...]}`` (also under ``"response"``, or named ``"cdr"`` as in the older
  UCM61xx guide); each entry is one record, or one *session* ``{"main_cdr": {...},
  "sub_cdr_1": {...}, ...}`` whose records are the legs of one call;
- a pushed real-time record: one record, one session, or a ``cdr_root`` list.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.pbx.records import CdrRecord, LegDirection, LegDisposition

# The UCM writes times in its own local time, without an offset.
UCM_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_NO_TIME = {"", "0000-00-00 00:00:00", "none", "null"}
_DISPOSITIONS = {
    "ANSWERED": LegDisposition.ANSWERED,
    "NO ANSWER": LegDisposition.NO_ANSWER,
    "NOANSWER": LegDisposition.NO_ANSWER,
    "BUSY": LegDisposition.BUSY,
    "FAILED": LegDisposition.FAILED,
    "CONGESTION": LegDisposition.FAILED,
    "CANCEL": LegDisposition.CANCELED,
    "CANCELED": LegDisposition.CANCELED,
    "CANCELLED": LegDisposition.CANCELED,
}
_CLID = re.compile(r'^\s*"?([^"<]*)"?\s*<([^>]*)>\s*$')


class UcmFormatError(ValueError):
    """A record the adapter cannot read (names the field, never a value)."""


def sessions_of(payload: Any) -> list[list[dict[str, Any]]]:
    """The sessions (lists of raw records, main first) in a cdrapi response or a push."""
    if isinstance(payload, dict):
        inner = payload.get("response") if isinstance(payload.get("response"), dict) else payload
        for key in ("cdr_root", "cdr"):
            if key in inner:
                entries = inner[key]
                if not isinstance(entries, list):
                    raise UcmFormatError(f"'{key}' is not a list")
                return [_session(entry) for entry in entries]
        return [_session(payload)]
    if isinstance(payload, list):
        return [_session(entry) for entry in payload]
    raise UcmFormatError("a CDR payload is a JSON object or list")


def _session(entry: Any) -> list[dict[str, Any]]:
    if not isinstance(entry, dict):
        raise UcmFormatError("a CDR entry is a JSON object")
    if "main_cdr" in entry:
        subs = sorted((k for k in entry if k.startswith("sub_cdr_")), key=lambda k: int(k.rsplit("_", 1)[1] or 0))
        records = [entry["main_cdr"], *(entry[k] for k in subs)]
        if not all(isinstance(r, dict) for r in records):
            raise UcmFormatError("main_cdr / sub_cdr_N are JSON objects")
        return records
    return [entry]


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def parse_time(value: str, tz: ZoneInfo) -> datetime | None:
    """A UCM local time ("2026-02-01 10:30:05") as an aware UTC datetime; None when unset."""
    text = (value or "").strip()
    if text.lower() in _NO_TIME:
        return None
    text = text.replace("T", " ")
    try:
        local = datetime.strptime(text[:19], UCM_TIME_FORMAT)
    except ValueError as exc:
        raise UcmFormatError("a time is not YYYY-MM-DD HH:MM:SS") from exc
    return local.replace(tzinfo=tz).astimezone(UTC)


def format_time(moment: datetime, tz: ZoneInfo) -> str:
    """An aware datetime as the UCM writes it (its local time, no offset)."""
    return moment.astimezone(tz).strftime(UCM_TIME_FORMAT)


def _direction(raw: dict[str, Any]) -> LegDirection:
    userfield = _text(raw, "userfield").lower()
    if userfield in ("inbound", "outbound", "internal"):
        return LegDirection(userfield.upper())
    if _text(raw, "src_trunk_name"):
        return LegDirection.INBOUND
    if _text(raw, "dst_trunk_name"):
        return LegDirection.OUTBOUND
    return LegDirection.INTERNAL


def _caller_name(raw: dict[str, Any]) -> str:
    name = _text(raw, "caller_name")
    if name:
        return name
    match = _CLID.match(_text(raw, "clid"))
    return match.group(1).strip() if match and match.group(1).strip() != match.group(2).strip() else ""


def recording_names(recordfiles: str) -> tuple[str, ...]:
    """``recordfiles`` ("a.wav@b.wav", "a.wav,b.wav", "a.wav@") as a tuple of names."""
    parts = re.split(r"[@,;]", recordfiles or "")
    return tuple(p.strip().strip("\"'") for p in parts if p.strip().strip("\"'"))


def record_from_ucm(raw: dict[str, Any], *, tz: ZoneInfo, session_id: str = "", main: dict[str, Any] | None = None
                    ) -> CdrRecord | None:
    """One UCM record as a leg; None for Asterisk's ForkCDR copies (not a leg of their own)."""
    if _text(raw, "lastapp") == "ForkCDR":
        return None
    main = main or raw
    uniqueid = _text(raw, "uniqueid")
    if not uniqueid:
        raise UcmFormatError("a record without 'uniqueid'")
    acct = _text(raw, "AcctId")
    try:
        position = int(acct) if acct else 0
    except ValueError as exc:
        raise UcmFormatError("'AcctId' is not a number") from exc
    started = parse_time(_text(raw, "start"), tz)
    ended = parse_time(_text(raw, "end"), tz)
    if started is None or ended is None:
        raise UcmFormatError("a record without 'start' or 'end'")
    direction = _direction(main)
    if direction is LegDirection.OUTBOUND:
        extension, remote = _text(raw, "channel_ext") or _text(raw, "src"), _text(raw, "dst")
    else:
        extension, remote = _text(raw, "dstchannel_ext"), _text(raw, "src") or _text(main, "src")
    disposition = _DISPOSITIONS.get(_text(raw, "disposition").upper(), LegDisposition.FAILED)
    answered = parse_time(_text(raw, "answer"), tz) if disposition is LegDisposition.ANSWERED else None
    action = _text(raw, "action_type").upper()
    transferred_by = _text(raw, "action_owner") if "TRANSFER" in action else ""
    linked = (_text(raw, "session") or _text(raw, "linkedid") or session_id or _text(main, "uniqueid")
              or uniqueid)
    return CdrRecord(
        position=position,
        # One leg = the caller's channel (uniqueid) to one called channel: Asterisk writes
        # the ring group's three legs with the caller's uniqueid each.
        unique_id=f"{uniqueid}/{_text(raw, 'dstchannel') or _text(raw, 'channel')}",
        linked_id=linked,
        direction=direction,
        remote_number=remote,
        extension=extension or None,
        started_at=started,
        answered_at=answered,
        ended_at=max(ended, started),
        disposition=disposition,
        did=_text(raw, "did") or (_text(main, "dst") if direction is LegDirection.INBOUND else ""),
        sip_call_id=None,
        caller_name=_caller_name(raw),
        transferred_by=transferred_by or None,
        recording_files=recording_names(_text(raw, "recordfiles")),
    )


def records_from_payload(payload: Any, *, tz: ZoneInfo) -> Iterator[CdrRecord]:
    """Every leg in a cdrapi response or a real-time push, sessions in order."""
    for session in sessions_of(payload):
        main = session[0]
        session_id = _text(main, "session") or _text(main, "uniqueid")
        for raw in session:
            record = record_from_ucm(raw, tz=tz, session_id=session_id, main=main)
            if record is not None:
                yield record


__all__ = [
    "UCM_TIME_FORMAT",
    "UcmFormatError",
    "format_time",
    "parse_time",
    "record_from_ucm",
    "recording_names",
    "records_from_payload",
    "sessions_of",
]
