"""The lab's CDR source over an accounting file written as Kamailio writes it (lab_leg rows):
mapping, the firm's rows only, paging, ``since``, ``live()`` and the recording names. The
same source against the running lab: tests/softphone/test_pbx_lab_legs.py."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dev.pbx_lab.lab import LAB_CALL_SCHEMA
from services.pbx.lab import LabCdrSource
from services.pbx.records import CdrSourceError, LegDirection, LegDisposition

FIRM = "al-waha.pbx.localhost"
T0 = 1_790_000_000.0


def _lab(tmp_path: Path) -> Path:
    lab = tmp_path / "lab"
    (lab / "spool" / "pcaps").mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(lab / "accounting.sqlite")) as con:
        con.executescript(LAB_CALL_SCHEMA)
    return lab


def _leg(lab: Path, *, call_id: str = "c1", branch: int = 0, linked: str | None = None, kind: str = "inbound",
         firm: str = FIRM, ext: str = "1001", invited: float = T0, answered: float | None = None, ended: float | None = None,
         disposition: str = "NO ANSWER", by: str = "", to_uri: str = "sip:+966110000000@127.0.0.1:5080") -> None:
    with contextlib.closing(sqlite3.connect(lab / "accounting.sqlite")) as con:
        con.execute(
            "INSERT INTO lab_leg (call_id, branch, linked_id, kind, firm, did, from_uri, to_uri, extension, invited_at, "
            "answered_at, ended_at, disposition, sip_code, transferred_by) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (call_id, branch, linked or call_id, kind, firm, "+966110000000" if kind == "inbound" else "",
             "sip:0551234567@127.0.0.1:5094" if kind != "outbound" else f"sip:{ext}@{firm}", to_uri, ext, invited,
             answered, ended or invited + 5, disposition, 200 if answered else 487, by))
        con.commit()


def test_legs_map_to_records_of_the_firm_only_in_position_order(tmp_path):
    lab = _lab(tmp_path)
    _leg(lab, ext="1001", disposition="CANCELED")
    _leg(lab, firm="other.pbx.localhost", ext="1001")
    _leg(lab, branch=1, ext="1002", invited=T0 + 0.2, answered=T0 + 3, ended=T0 + 33, disposition="ANSWERED")
    _leg(lab, call_id="c2", linked="c1", ext="1003", invited=T0 + 33, answered=T0 + 34, ended=T0 + 94,
         disposition="ANSWERED", by="1002", to_uri=f"sip:1003@{FIRM}")
    _leg(lab, call_id="c3", kind="outbound", ext="1004", answered=T0 + 100, ended=T0 + 110, disposition="ANSWERED",
         to_uri=f"sip:0509999999@{FIRM}")
    (lab / "spool" / "pcaps" / "c1-abc.pcap").write_bytes(b"")
    records = list(LabCdrSource(lab, sip_domain=FIRM.upper()).catch_up(0))
    assert [r.position for r in records] == [1, 3, 4, 5]
    rang, answered, transferred, outbound = records
    assert (rang.unique_id, rang.extension, rang.disposition, rang.recording_files) == (
        "c1/0", "1001", LegDisposition.CANCELED, ())
    assert (answered.unique_id, answered.talk_seconds, answered.ring_seconds) == ("c1/1", 30, 3)
    assert answered.recording_files == ("c1-abc.wav",)
    assert answered.started_at == datetime.fromtimestamp(T0 + 0.2, UTC)
    assert (answered.remote_number, answered.did, answered.direction) == ("0551234567", "+966110000000",
                                                                          LegDirection.INBOUND)
    assert (transferred.linked_id, transferred.sip_call_id, transferred.transferred_by) == ("c1", "c2", "1002")
    assert (outbound.direction, outbound.extension, outbound.remote_number) == (LegDirection.OUTBOUND, "1004",
                                                                                "0509999999")


def test_catch_up_pages_past_a_thousand_and_honours_watermark_and_since(tmp_path):
    lab = _lab(tmp_path)
    with contextlib.closing(sqlite3.connect(lab / "accounting.sqlite")) as con:
        con.executemany(
            "INSERT INTO lab_leg (call_id, branch, linked_id, kind, firm, from_uri, to_uri, extension, invited_at, "
            "ended_at, disposition, sip_code) VALUES (?, 0, ?, 'inbound', ?, 'sip:05@x', 'sip:+9@x', '1001', ?, ?, "
            "'NO ANSWER', 487)", [(f"c{i}", f"c{i}", FIRM, T0 + i, T0 + i + 5) for i in range(2300)])
        con.commit()
    source = LabCdrSource(lab, sip_domain=FIRM)
    assert [r.position for r in source.catch_up(0)] == list(range(1, 2301))
    assert [r.position for r in source.catch_up(2290)] == list(range(2291, 2301))
    since = datetime.fromtimestamp(T0 + 2000, UTC)
    assert len(list(source.catch_up(0, since=since))) == 300


def test_live_yields_only_what_is_written_after_it_opened(tmp_path):
    lab = _lab(tmp_path)
    _leg(lab, call_id="old")
    source = LabCdrSource(lab, sip_domain=FIRM, poll_seconds=0.05)

    async def run():
        feed = source.live()
        first = asyncio.ensure_future(feed.__anext__())
        await asyncio.sleep(0.2)
        _leg(lab, call_id="new1")
        _leg(lab, call_id="new2")
        got = [await first, await feed.__anext__()]
        await feed.aclose()
        return got

    assert [r.sip_call_id for r in asyncio.run(run())] == ["new1", "new2"]


def test_a_missing_lab_or_recording_is_a_clear_error(tmp_path):
    with pytest.raises(CdrSourceError) as caught:
        list(LabCdrSource(tmp_path / "nowhere", sip_domain=FIRM).catch_up(0))
    assert caught.value.code == "unreachable" and "is the lab running" in caught.value.message
    lab = _lab(tmp_path)
    source = LabCdrSource(lab, sip_domain=FIRM)
    for name in ("../accounting.sqlite", "nope.wav", "x/y.wav"):
        with pytest.raises(CdrSourceError) as missing:
            source.open_recording(name)
        assert missing.value.code == "not_found"
    (lab / "spool" / "pcaps" / "c9-x.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(20))
    with pytest.raises(CdrSourceError) as silent:
        b"".join(source.open_recording("c9-x.wav"))
    assert silent.value.code == "not_found" and "no G.711 audio" in silent.value.message
    assert "0 call record(s)" in source.test_connection()
