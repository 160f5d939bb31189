"""The PBX lab as a :class:`~services.pbx.records.CdrSource`: the lab's per-leg accounting
(``lab_leg`` in ``accounting.sqlite``, written by Kamailio, see dev/kamailio/kamailio.cfg)
and rtpengine's recordings (``spool/pcaps``), read-only.

One firm's records: the lab serves every firm, each in its own SIP domain; a row belongs
to the firm whose ``PbxSettings.sip_domain`` is the row's ``firm`` (compared lower-case).

Mapping of a ``lab_leg`` row to a :class:`CdrRecord`:

- ``position`` = the row id (rows are written when a leg ends, ids only grow);
- ``unique_id`` = ``"<Call-ID>/<branch>"`` (one forked branch of one INVITE = one leg);
- ``linked_id`` = the row's ``linked_id``: the call's first Call-ID, kept by a transferee's
  new call (Kamailio links the transfer's INVITE to the REFER's dialog);
- ``remote_number`` = the caller's number (From user) for inbound and internal calls, the
  dialled number (To user) for outbound ones;
- ``extension`` = the extension rung (inbound/internal) or calling (outbound); ``None``
  when no extension rang (a call to a firm with nobody registered);
- ``recording_files`` = ``("<pcap name>.wav",)`` for an answered leg whose call rtpengine
  recorded: rtpengine records per Call-ID, so the legs of one SIP call share a recording and
  a transfer's new call has its own. :meth:`LabCdrSource.open_recording` decodes the pcap
  into a two-channel G.711 WAV (dev/pbx_lab/lab.py ``pcap_to_wav``); a browser-to-browser
  Opus call has no WAV (``not_found``).

``live()`` polls the table every ``poll_seconds`` (0.2 s) for rows after the last one it
has yielded, starting from the newest row when it is opened (the reconciler's catch-up
covers what was written before). SQLite has no change notification across processes, and
a 200 ms poll of an indexed ``id > ?`` query costs nothing next to the PBX's own work.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

from services.pbx.records import CdrRecord, CdrSourceError, LegDirection, LegDisposition

_COLUMNS = ("id, call_id, branch, linked_id, kind, firm, did, from_uri, to_uri, extension, invited_at, "
            "answered_at, ended_at, disposition, sip_code, transferred_by")
_DIRECTIONS = {"inbound": LegDirection.INBOUND, "outbound": LegDirection.OUTBOUND, "internal": LegDirection.INTERNAL}
_USER = re.compile(r"^sips?:([^@;>]+)@")
_WAV_CHUNK = 64 * 1024
_PAGE = 1000


def _user_of(uri: str) -> str:
    match = _USER.match(uri.strip().strip("<>"))
    return match.group(1) if match else ""


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


class LabCdrSource:
    """The PBX lab in ``lab_dir`` (what scripts/dev_pbx.sh runs), for the firm whose SIP
    domain is ``sip_domain``."""

    kind = "lab"

    def __init__(self, lab_dir: Path, *, sip_domain: str, poll_seconds: float = 0.2) -> None:
        self.lab_dir = Path(lab_dir)
        self.domain = sip_domain.strip().lower()
        self.poll_seconds = poll_seconds
        self.db_path = self.lab_dir / "accounting.sqlite"
        self.pcaps = self.lab_dir / "spool" / "pcaps"

    # ------------------------------------------------------------------ reading rows

    def _connect(self) -> sqlite3.Connection:
        if not self.db_path.exists():
            raise CdrSourceError("unreachable", f"The PBX lab's call accounting ({self.db_path}) does not exist: "
                                                "is the lab running (make dev-pbx)?")
        try:
            con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
            con.execute("SELECT 1 FROM lab_leg LIMIT 1")
        except sqlite3.Error as exc:
            raise CdrSourceError("bad_response", f"The PBX lab's call accounting cannot be read ({exc}); "
                                                 "restart the lab so that it writes per-leg records.") from exc
        return con

    def _rows(self, con: sqlite3.Connection, after: int, since: datetime | None, limit: int) -> list[tuple]:
        sql = f"SELECT {_COLUMNS} FROM lab_leg WHERE lower(firm) = ? AND id > ?"
        args: list[object] = [self.domain, after]
        if since is not None:
            sql += " AND invited_at >= ?"
            args.append(since.timestamp())
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise CdrSourceError("bad_response", f"The PBX lab's call accounting could not be read ({exc}).") from exc

    def _record(self, row: tuple) -> CdrRecord:
        (rid, call_id, branch, linked_id, kind, _firm, did, from_uri, to_uri, extension, invited_at, answered_at,
         ended_at, disposition, _code, transferred_by) = row
        direction = _DIRECTIONS.get(kind, LegDirection.INBOUND)
        remote = _user_of(to_uri) if direction is LegDirection.OUTBOUND else _user_of(from_uri)
        files: tuple[str, ...] = ()
        if disposition == LegDisposition.ANSWERED.value:
            pcap = self._pcap_for(call_id)
            if pcap is not None:
                files = (pcap.stem + ".wav",)
        return CdrRecord(
            position=int(rid),
            unique_id=f"{call_id}/{int(branch)}",
            linked_id=linked_id or call_id,
            direction=direction,
            remote_number=remote,
            extension=extension or None,
            started_at=_utc(invited_at),
            answered_at=_utc(answered_at) if answered_at is not None else None,
            ended_at=_utc(ended_at),
            disposition=LegDisposition(disposition),
            did=did or "",
            sip_call_id=call_id,
            transferred_by=transferred_by or None,
            recording_files=files,
        )

    def catch_up(self, after_position: int, *, since: datetime | None = None) -> Iterator[CdrRecord]:
        con = self._connect()
        try:
            after = after_position
            while True:
                rows = self._rows(con, after, since, _PAGE)
                for row in rows:
                    yield self._record(row)
                if len(rows) < _PAGE:
                    return
                after = rows[-1][0]
        finally:
            con.close()

    def test_connection(self) -> str:
        """A sentence for the PBX settings page: the lab's accounting is readable."""
        with contextlib.closing(self._connect()) as con:
            count = int(con.execute("SELECT COUNT(*) FROM lab_leg WHERE lower(firm) = ?", (self.domain,)).fetchone()[0])
        return f"Connected to the PBX lab's call accounting; it holds {count} call record(s) of this firm."

    def newest_position(self) -> int:
        """The id of the newest leg row of any firm (0 when none)."""
        with contextlib.closing(self._connect()) as con:
            return int(con.execute("SELECT COALESCE(MAX(id), 0) FROM lab_leg").fetchone()[0])

    async def live(self) -> AsyncIterator[CdrRecord]:
        after = await asyncio.to_thread(self.newest_position)
        while True:
            records = await asyncio.to_thread(lambda: list(self.catch_up(after)))
            for record in records:
                after = record.position
                yield record
            await asyncio.sleep(self.poll_seconds)

    # ------------------------------------------------------------------ recordings

    def _pcap_for(self, call_id: str) -> Path | None:
        if not self.pcaps.is_dir():
            return None
        found = sorted(p for p in self.pcaps.glob("*.pcap") if p.name.startswith(call_id + "-"))
        return found[0] if found else None

    def open_recording(self, name: str) -> Iterator[bytes]:
        """Raises ``not_found`` at once for an unknown name; decoding happens as it is read."""
        if "/" in name or "\\" in name or not name.endswith(".wav") or name.startswith("."):
            raise CdrSourceError("not_found", "No such recording in the PBX lab.")
        pcap = self.pcaps / (name[: -len(".wav")] + ".pcap")
        if not pcap.is_file():
            raise CdrSourceError("not_found", "The PBX lab no longer has this recording.")
        return self._wav_chunks(pcap, name)

    @staticmethod
    def _wav_chunks(pcap: Path, name: str) -> Iterator[bytes]:
        from dev.pbx_lab.lab import pcap_to_wav  # the lab's own decoder (G.711 -> WAV)

        with tempfile.TemporaryDirectory(prefix="watheeq-lab-rec-") as tmp:
            out = Path(tmp) / "recording.wav"
            try:
                pcap_to_wav(pcap, out)
            except (ValueError, OSError) as exc:
                raise CdrSourceError("not_found", f"The PBX lab's recording {name} has no G.711 audio to "
                                                  "play.") from exc
            with out.open("rb") as fh:
                while chunk := fh.read(_WAV_CHUNK):
                    yield chunk


__all__ = ["LabCdrSource"]
