"""The PBX lab writes one record per leg, as the UCM does, and the lab's CDR source
(services/pbx/lab.py) hands them over as the phones lived them: who rang, who
answered, who the call was transferred to, the talk seconds of each, the recording.

Agents are baresip desk phones registered over UDP, the caller an outside baresip phone
on the trunk; everything runs in a network namespace with only ``lo`` (pbx_lab_support).
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import wave

import pytest

from services.models import PbxSettings
from services.pbx.lab import LabCdrSource
from services.pbx.records import LegDirection, LegDisposition
from services.pbx.sources import source_for
from tests.softphone.pbx_lab_support import lab_for_tests

RING = 6


@pytest.fixture(scope="module")
def lab_and_firm(tmp_path_factory):
    with lab_for_tests(tmp_path_factory.mktemp("pbx-lab-legs"), ring_seconds=RING) as pair:
        yield pair


@pytest.fixture
def lab(lab_and_firm):
    lab, _ = lab_and_firm
    yield lab
    for phone in lab.phones:
        phone.stop()
    lab.phones = []


@pytest.fixture
def firm(lab_and_firm):
    return lab_and_firm[1]


@pytest.fixture
def source(lab, firm) -> LabCdrSource:
    made = source_for(PbxSettings(tenant_id=1, host="127.0.0.1", sip_domain=firm.domain, cdr_source="lab"),
                      lab_dir=lab.dir)
    assert isinstance(made, LabCdrSource)
    return made


class LiveFeed:
    """``source.live()`` consumed in its own thread and event loop, as the reconciler does."""

    def __init__(self, source: LabCdrSource) -> None:
        self.records = []
        self.opened = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._task = None
        self._thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self._thread.start()
        assert self.opened.wait(5)

    def _run(self, source) -> None:
        async def consume():
            feed = source.live()
            first = asyncio.ensure_future(feed.__anext__())
            await asyncio.sleep(0.5)  # the feed has read where the table ends
            self.opened.set()
            self.records.append(await first)
            async for record in feed:
                self.records.append(record)

        self._task = self._loop.create_task(consume())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(5)


def _agent(lab, firm, ext: str, port: int):
    return lab.agent(f"agent-{ext}-{port}", user=ext, domain=firm.domain, password=firm.passwords[ext], port=port)


def _talk(phone, since: int) -> float:
    established = phone.wait_event("CALL_ESTABLISHED", 10, since=since)["at"]
    closed = phone.wait_event("CALL_CLOSED", 10, since=since)["at"]
    return closed - established


def test_a_ring_group_call_answered_by_one_agent_and_transferred_to_another_gives_one_record_per_leg(
        lab, firm, source):
    a1, a2, a3 = _agent(lab, firm, "1001", 5071), _agent(lab, firm, "1002", 5073), _agent(lab, firm, "1003", 5075)
    watermark = source.newest_position()
    live = LiveFeed(source)
    caller = lab.phone("caller", port=5094, number="0551234567")
    caller.dial(lab.did_uri(firm.did))
    for agent in (a1, a2, a3):
        agent.wait_event("CALL_INCOMING")
    time.sleep(1)
    a2.accept()
    caller.wait_event("CALL_ESTABLISHED")
    a1.wait_event("CALL_CLOSED", 5)
    a3.wait_event("CALL_CLOSED", 5)
    seen3 = len(a3.events)
    time.sleep(2)
    a2.command("transfer", f"sip:1003@{firm.domain}")
    a3.wait_event("CALL_INCOMING", 10, since=seen3)
    a3.accept()
    time.sleep(3)
    caller.command("hangup")
    talk2 = _talk(a2, 0)
    talk3 = _talk(a3, seen3)

    deadline = time.time() + 10
    while time.time() < deadline and len(live.records) < 4:
        time.sleep(0.1)
    live.close()
    legs = list(source.catch_up(watermark))
    assert [r.unique_id for r in live.records] == [r.unique_id for r in legs], (live.records, legs)
    assert len(legs) == 4, legs
    assert [r.position for r in legs] == sorted(r.position for r in legs)
    assert len({r.unique_id for r in legs}) == 4
    original = [r for r in legs if r.transferred_by is None]
    transferred = [r for r in legs if r.transferred_by is not None]
    assert len({r.linked_id for r in legs}) == 1, "the transfer's leg is not linked to the call"
    assert {r.sip_call_id for r in original} == {original[0].linked_id}

    by_ext = {r.extension: r for r in original}
    assert set(by_ext) == {"1001", "1002", "1003"}
    assert by_ext["1002"].disposition is LegDisposition.ANSWERED
    assert by_ext["1001"].disposition is LegDisposition.CANCELED
    assert by_ext["1003"].disposition is LegDisposition.CANCELED
    for record in legs:
        assert (record.direction, record.did, record.remote_number) == (LegDirection.INBOUND, firm.did, "0551234567")
    # They rang ~1 s before 1002 answered and stopped then.
    assert all(0 <= by_ext[e].ring_seconds <= 2 for e in ("1001", "1002", "1003"))
    assert abs(by_ext["1002"].talk_seconds - talk2) <= 1, (by_ext["1002"], talk2)

    (leg3,) = transferred
    assert (leg3.extension, leg3.transferred_by, leg3.disposition) == ("1003", "1002", LegDisposition.ANSWERED)
    assert leg3.sip_call_id != leg3.linked_id
    assert abs(leg3.talk_seconds - talk3) <= 1, (leg3, talk3)

    # Each answered leg names its call's recording; it opens as a WAV as long as the talk.
    for record in (by_ext["1002"], leg3):
        (name,) = record.recording_files
        data = b"".join(source.open_recording(name))
        with wave.open(io.BytesIO(data)) as wav:
            seconds = wav.getnframes() / wav.getframerate()
        assert abs(seconds - record.talk_seconds) <= 1, (name, seconds, record)
    assert by_ext["1001"].recording_files == ()


def test_a_call_to_a_firm_with_nobody_registered_gives_one_no_answer_record(lab, firm, source):
    assert "AoR:" not in lab.registered()
    watermark = source.newest_position()
    result = lab.outside_call(to=firm.did, duration=1, port=5094)
    assert not result.answered
    time.sleep(0.5)
    (leg,) = list(source.catch_up(watermark))
    assert (leg.extension, leg.disposition, leg.answered_at, leg.direction) == (
        None, LegDisposition.NO_ANSWER, None, LegDirection.INBOUND)
    assert leg.did == firm.did and leg.recording_files == ()
    assert RING - 1 <= leg.ring_seconds <= RING + 1


def test_an_agent_who_lets_it_ring_out_gets_a_no_answer_leg_and_another_firm_sees_none_of_it(lab, firm, source):
    _agent(lab, firm, "1004", 5077)
    watermark = source.newest_position()
    result = lab.outside_call(to=firm.did, duration=1, port=5094)
    assert not result.answered
    time.sleep(0.5)
    (leg,) = list(source.catch_up(watermark))
    assert (leg.extension, leg.disposition) == ("1004", LegDisposition.NO_ANSWER)
    assert RING - 1 <= leg.ring_seconds <= RING + 1
    other = LabCdrSource(lab.dir, sip_domain="another-firm.pbx.localhost")
    assert list(other.catch_up(0)) == []
    assert list(source.catch_up(0))  # and the firm's own history is all there


def test_the_ucm_emulator_serves_the_labs_real_calls_and_the_ucm_adapter_reads_them_as_the_lab_does(
        lab, firm, source, tmp_path):
    from dev.pbx_lab.ucm_emulator import UcmEmulator
    from services.pbx.ucm import UcmCdrSource
    from tests.pbx.test_ucm import _free_port

    a1, a2 = _agent(lab, firm, "1001", 5071), _agent(lab, firm, "1002", 5073)
    watermark = source.newest_position()
    caller = lab.phone("caller-ucm", port=5094, number="0557654321")
    caller.dial(lab.did_uri(firm.did))
    a1.wait_event("CALL_INCOMING")
    a2.wait_event("CALL_INCOMING")
    a1.accept()
    caller.wait_event("CALL_ESTABLISHED")
    time.sleep(3)
    caller.hangup()
    talk = _talk(a1, 0)
    time.sleep(0.5)

    password = "lab-ucm-Secret-1"
    emu = UcmEmulator(tmp_path / "ucm", password=password, lab_dir=lab.dir, sip_domain=firm.domain,
                      timezone="Asia/Riyadh")
    emu.start()
    port = _free_port()
    ucm = UcmCdrSource(api_url=emu.url, user="cdrapi", password=password, timezone="Asia/Riyadh",
                       verify=str(emu.cert), realtime_port=port)
    pushed, loop = [], asyncio.new_event_loop()

    async def listen():
        async for record in ucm.live():
            pushed.append(record)

    task = loop.create_task(listen())
    thread = threading.Thread(target=lambda: loop.run_until_complete(asyncio.wait([task])), daemon=True)
    thread.start()
    try:
        new = emu.sync_lab()
        deadline = time.time() + 5
        while True:
            try:
                UcmEmulator.push(new, port=port)
                break
            except OSError:
                assert time.time() < deadline, "the real-time output listener did not open"
                time.sleep(0.1)
        lab_legs = list(source.catch_up(watermark))
        ucm_legs = list(ucm.catch_up(watermark))
        deadline = time.time() + 5
        # The emulator pushes every leg of the lab (earlier tests' calls too): this call's legs
        # arrive exactly as the catch-up reads them.
        def ours() -> dict:
            return {r.unique_id: r for r in pushed if r.position > watermark}

        while time.time() < deadline and len(ours()) < len(ucm_legs):
            time.sleep(0.05)
        assert len(lab_legs) == 2 and len(ucm_legs) == 2, (lab_legs, ucm_legs)
        assert ours() == {r.unique_id: r for r in ucm_legs}
        for ours, theirs in zip(lab_legs, ucm_legs, strict=True):
            assert theirs.position == ours.position
            assert (theirs.extension, theirs.disposition, theirs.direction) == (
                ours.extension, ours.disposition, ours.direction)
            assert (theirs.remote_number, theirs.did) == ("0557654321", firm.did)
            assert abs(theirs.talk_seconds - ours.talk_seconds) <= 1
            assert abs((theirs.started_at - ours.started_at).total_seconds()) < 1
        assert len({r.linked_id for r in ucm_legs}) == 1
        answered = next(r for r in ucm_legs if r.disposition is LegDisposition.ANSWERED)
        assert answered.extension == "1001" and abs(answered.talk_seconds - talk) <= 1
        lab_answered = next(r for r in lab_legs if r.disposition is LegDisposition.ANSWERED)
        (name,) = answered.recording_files
        assert b"".join(ucm.open_recording(name)) == b"".join(source.open_recording(lab_answered.recording_files[0]))
    finally:
        loop.call_soon_threadsafe(task.cancel)
        thread.join(5)
        emu.stop()
        ucm.close()
