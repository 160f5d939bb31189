"""The UCM6301 adapter (services/pbx/ucm.py) against the UCM emulator
(dev/pbx_lab/ucm_emulator.py) over real HTTPS and TCP on loopback: the challenge/login,
paging, the silent empty result of a bad parameter, cookie expiry, recordings through
recapi, and the real-time output arriving while a catch-up runs."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from dev.pbx_lab.ucm_emulator import UcmEmulator
from services import security
from services.models import PbxSettings
from services.pbx.records import CdrSourceError, LegDirection, LegDisposition
from services.pbx.sources import source_for
from services.pbx.ucm import UCM_API_PASSWORD_PURPOSE, UcmCdrSource

PASSWORD = "ucm-Api-pass-7391"
TZ = "Asia/Riyadh"  # UTC+3
BASE = datetime(2026, 11, 1, 8, 0, 0, tzinfo=UTC)


def _local(moment: datetime) -> str:
    return (moment + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S")


def ucm_record(acct: int, *, session: str | None = None, ext: str = "1001", answered: bool = True,
               start: datetime | None = None, talk: int = 30, recordfiles: str = "", **extra) -> dict:
    start = start or BASE + timedelta(seconds=acct * 7)
    answer = start + timedelta(seconds=5)
    end = answer + timedelta(seconds=talk) if answered else start + timedelta(seconds=20)
    record = {
        "AcctId": str(acct), "accountcode": "", "src": "0551234567", "dst": "+966110000000",
        "dcontext": "from-trunk", "clid": '"Client" <0551234567>', "channel": f"PJSIP/trunk-{acct:08x}",
        "dstchannel": f"PJSIP/{ext}-{acct:08x}", "lastapp": "Dial", "lastdata": f"PJSIP/{ext},60",
        "start": _local(start), "answer": _local(answer) if answered else "0000-00-00 00:00:00", "end": _local(end),
        "duration": str(int((end - start).total_seconds())), "billsec": str(talk if answered else 0),
        "disposition": "ANSWERED" if answered else "NO ANSWER", "amaflags": "DOCUMENTATION",
        "uniqueid": f"{int(start.timestamp())}.{acct}", "userfield": "Inbound", "channel_ext": "",
        "dstchannel_ext": ext, "service": "", "caller_name": "Client", "recordfiles": recordfiles,
        "src_trunk_name": "trunk", "dst_trunk_name": "", "session": session or f"s-{acct}",
    }
    record.update(extra)
    return record


@pytest.fixture
def emulator(tmp_path):
    emu = UcmEmulator(tmp_path / "ucm", password=PASSWORD, timezone=TZ)
    emu.start()
    yield emu
    emu.stop()


def _source(emu: UcmEmulator, password: str = PASSWORD, **kwargs) -> UcmCdrSource:
    return UcmCdrSource(api_url=emu.url, user="cdrapi", password=password, timezone=TZ, verify=str(emu.cert),
                        **kwargs)


def _actions(emu: UcmEmulator) -> list[str]:
    return [r["action"] for r in emu.requests]


def test_login_answers_the_challenge_with_md5_of_challenge_and_password_and_keeps_the_cookie(emulator):
    source = _source(emulator)
    assert "Connected to the UCM as cdrapi" in source.test_connection()
    assert _actions(emulator) == ["challenge", "login", "cdrapi"]
    assert emulator.requests[0] == {"action": "challenge", "user": "cdrapi", "version": "1.0"}
    assert PASSWORD not in repr(source) and "sid" not in repr(source)


def test_a_wrong_password_is_auth_failed_with_a_sentence_that_does_not_contain_it(emulator):
    with pytest.raises(CdrSourceError) as caught:
        _source(emulator, password="not-the-password").test_connection()
    assert caught.value.code == "auth_failed"
    assert "wrong account or password" in caught.value.message
    assert "not-the-password" not in caught.value.message
    with pytest.raises(CdrSourceError) as unknown:
        UcmCdrSource(api_url=emulator.url, user="nobody", password=PASSWORD, verify=str(emulator.cert)).login()
    assert unknown.value.code == "auth_failed" and "no API user" in unknown.value.message


def test_an_unreachable_ucm_and_an_untrusted_certificate_are_told_apart(emulator):
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(CdrSourceError) as down:
        UcmCdrSource(api_url=f"https://127.0.0.1:{port}", user="cdrapi", password=PASSWORD).login()
    assert down.value.code == "unreachable" and "cannot be reached" in down.value.message
    with pytest.raises(CdrSourceError) as untrusted:
        UcmCdrSource(api_url=emulator.url, user="cdrapi", password=PASSWORD, verify=True).login()
    assert untrusted.value.code == "unreachable" and "certificate" in untrusted.value.message


def test_2500_records_come_over_three_pages_in_acctid_order(emulator):
    emulator.add_records(ucm_record(i) for i in range(1, 2501))
    records = list(_source(emulator).catch_up(0))
    assert [r.position for r in records] == list(range(1, 2501))
    pages = [r for r in emulator.requests if r["action"] == "cdrapi"]
    assert [(p["offset"], p["numRecords"]) for p in pages] == [(0, 1000), (1000, 1000), (2000, 1000)]
    assert len({r.unique_id for r in records}) == 2500
    # After a watermark only the newer ones, still paging the whole window.
    assert [r.position for r in _source(emulator).catch_up(2400)] == list(range(2401, 2501))


def test_fields_map_to_a_leg_in_utc_with_the_sessions_legs_linked(emulator):
    start = BASE + timedelta(hours=2)
    emulator.add_records([
        ucm_record(10, session="call-1", ext="1001", answered=False, start=start, disposition="CANCELED"),
        ucm_record(11, session="call-1", ext="1002", start=start, talk=40, recordfiles="auto-1-0551234567-1002.wav@"),
        ucm_record(12, session="call-1", ext="1003", start=start + timedelta(seconds=46), talk=12,
                   action_type="TRANSFER", action_owner="1002"),
        ucm_record(13, ext="1004", start=start, userfield="Outbound", src="1004", dst="0509999999",
                   channel_ext="1004", dstchannel_ext="", src_trunk_name="", dst_trunk_name="trunk"),
    ])
    by_position = {r.position: r for r in _source(emulator).catch_up(0)}
    first, answered, transferred, outbound = (by_position[i] for i in (10, 11, 12, 13))
    assert {first.linked_id, answered.linked_id, transferred.linked_id} == {"call-1"}
    assert (first.extension, first.disposition, first.answered_at) == ("1001", LegDisposition.CANCELED, None)
    assert answered.started_at == start and answered.answered_at == start + timedelta(seconds=5)
    assert answered.talk_seconds == 40 and answered.recording_files == ("auto-1-0551234567-1002.wav",)
    assert (answered.direction, answered.remote_number, answered.did, answered.caller_name) == (
        LegDirection.INBOUND, "0551234567", "+966110000000", "Client")
    assert (transferred.extension, transferred.transferred_by) == ("1003", "1002")
    assert (outbound.direction, outbound.extension, outbound.remote_number) == (
        LegDirection.OUTBOUND, "1004", "0509999999")


def test_a_parameter_the_ucm_ignores_is_detected_instead_of_reading_as_no_calls(emulator):
    emulator.add_records(ucm_record(i) for i in range(1, 6))
    source = _source(emulator)
    # A quiet window is not an error.
    assert list(source.catch_up(0, since=BASE + timedelta(days=30))) == []
    # This "firmware" does not take startTime: the UCM answers an empty result, no error.
    emulator.rejected_params = {"startTime"}
    with pytest.raises(CdrSourceError) as caught:
        list(source.catch_up(0, since=BASE))
    assert caught.value.code == "empty_page"
    assert "no records for a query it should answer" in caught.value.message


def test_an_expired_cookie_means_one_new_login_and_the_catch_up_goes_on(emulator):
    emulator.add_records(ucm_record(i) for i in range(1, 1501))
    source = _source(emulator)
    source.login()
    emulator.expire_cookies()
    assert len(list(source.catch_up(0))) == 1500
    assert _actions(emulator).count("login") == 2


def test_a_recording_is_fetched_through_recapi_and_a_missing_one_is_not_found(emulator):
    audio = b"RIFF" + bytes(range(256)) * 1000
    emulator.recordings["auto-1-0551234567-1002.wav"] = audio
    emulator.add_records([ucm_record(1, recordfiles="auto-1-0551234567-1002.wav@")])
    source = _source(emulator)
    (record,) = list(source.catch_up(0))
    assert b"".join(source.open_recording(record.recording_files[0])) == audio
    recapi = [r for r in emulator.requests if r["action"] == "recapi"]
    assert recapi == [{"action": "recapi", "filedir": "monitor", "filename": "auto-1-0551234567-1002.wav"}]
    with pytest.raises(CdrSourceError) as caught:
        source.open_recording("auto-2-nope.wav")
    assert caught.value.code == "not_found"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_realtime_records_pushed_while_a_catch_up_runs_merge_without_duplicates(emulator):
    port = _free_port()
    source = _source(emulator, realtime_port=port)
    live_records, ready = [], threading.Event()
    loop = asyncio.new_event_loop()

    async def listen():
        feed = source.live()
        nxt = asyncio.ensure_future(feed.__anext__())
        while True:  # the listener is up once the port answers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        ready.set()
        live_records.append(await nxt)
        async for record in feed:
            live_records.append(record)

    task = loop.create_task(listen())
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.wait([task])), daemon=True)
    thread.start()
    assert ready.wait(5)

    old = [ucm_record(i) for i in range(1, 2001)]
    emulator.add_records(old)
    fresh = [ucm_record(i) for i in range(2001, 2101)]
    caught_up = []
    runner = threading.Thread(target=lambda: caught_up.extend(source.catch_up(0)))
    runner.start()
    # While it pages: the UCM writes 100 new records and pushes each; it also re-sends
    # 50 it had buffered (already in the catch-up's window).
    for record in fresh:
        emulator.add_records([record])
    UcmEmulator.push(fresh + old[1000:1050], port=port)
    runner.join(30)
    deadline = time.time() + 5
    while time.time() < deadline and len(live_records) < 150:
        time.sleep(0.05)
    loop.call_soon_threadsafe(task.cancel)
    thread.join(5)

    assert len(live_records) == 150
    merged = {r.unique_id: r for r in caught_up}
    for record in live_records:
        if record.unique_id in merged:
            assert merged[record.unique_id] == record  # the same leg, read the same way
        merged[record.unique_id] = record
    assert len(merged) == 2100
    assert sorted(r.position for r in merged.values()) == list(range(1, 2101))


def test_source_for_decrypts_the_stored_api_password_and_picks_the_adapter(emulator):
    settings = PbxSettings(tenant_id=1, host="127.0.0.1", cdr_source="ucm", api_url=emulator.url, api_user="cdrapi",
                           api_password_encrypted=security.encrypt_secret(PASSWORD, purpose=UCM_API_PASSWORD_PURPOSE),
                           realtime_port=5100)
    source = source_for(settings, timezone=TZ)
    assert isinstance(source, UcmCdrSource) and source.realtime_port == 5100
    assert "Connected" in source.test_connection()
    assert source_for(PbxSettings(tenant_id=1, host="127.0.0.1", cdr_source="")) is None
    with pytest.raises(CdrSourceError) as caught:
        source_for(PbxSettings(tenant_id=1, host="127.0.0.1", cdr_source="ucm", api_url=emulator.url))
    assert caught.value.code == "not_configured"
