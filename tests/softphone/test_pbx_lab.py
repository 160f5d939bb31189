"""The PBX lab behaves like the firm's UCM at the SIP level: calls from the outside world
ring the firm's ring group, media flows (and is recorded) through rtpengine, agents' calls
to outside numbers leave through the trunk, and the PBX accounts for every call.

The agents here are baresip desk phones registered over UDP; the outside phone is baresip
on the trunk side. Each plays a different tone (outside 440 Hz, agent 660 Hz) and records
what it hears, so a level *and* a frequency tell which way the audio went. Everything runs
in a network namespace with only ``lo`` (see pbx_lab_support).
"""

from __future__ import annotations

import subprocess
import time

import pytest

from dev.pbx_lab.lab import audio_level, rough_frequency, wav_seconds
from tests.softphone.pbx_lab_support import lab_for_tests

RING = 6  # the ring group's time in these tests (the lab's default is 20 s)
AUDIBLE = 0.05  # RMS amplitude; the tones are played at 0.5, silence measures ~0.0


@pytest.fixture(scope="module")
def lab_and_firm(tmp_path_factory):
    with lab_for_tests(tmp_path_factory.mktemp("pbx-lab"), ring_seconds=RING) as pair:
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


def _agent(lab, firm, ext: str, port: int, **kwargs):
    return lab.agent(f"agent-{ext}-{port}", user=ext, domain=firm.domain, password=firm.passwords[ext], port=port,
                     **kwargs)


def _close(frequency: float, expected: float) -> bool:
    return abs(frequency - expected) < expected * 0.1


def test_an_outside_call_rings_every_agent_and_the_one_who_answers_talks_both_ways_through_the_pbx(lab, firm):
    a1 = _agent(lab, firm, "1001", 5071)
    a2 = _agent(lab, firm, "1002", 5073)
    before = len(lab.calls())
    caller = lab.phone("caller", port=5094)
    invited = time.time()
    caller.dial(lab.did_uri(firm.did))
    a1.wait_event("CALL_INCOMING")
    a2.wait_event("CALL_INCOMING")
    a2.accept()
    established = caller.wait_event("CALL_ESTABLISHED")["at"]
    # The other agent stops ringing as soon as one answers.
    a1.wait_event("CALL_CLOSED", 5)
    time.sleep(5)
    caller.hangup()
    closed = caller.wait_event("CALL_CLOSED")["at"]
    a2.wait_event("CALL_CLOSED")

    heard_by_caller, heard_by_agent = caller.heard()[-1], a2.heard()[-1]
    assert audio_level(heard_by_caller) > AUDIBLE and _close(rough_frequency(heard_by_caller), 660)
    assert audio_level(heard_by_agent) > AUDIBLE and _close(rough_frequency(heard_by_agent), 440)
    assert wav_seconds(heard_by_caller) > 4.5 and wav_seconds(heard_by_agent) > 4.5
    assert a1.heard() == [], "the agent who did not answer heard something"

    rows = lab.wait_calls(before + 1)
    call = rows[-1]
    assert (call.kind, call.did, call.disposition, call.answered_by) == ("inbound", firm.did, "ANSWERED", "1002")
    assert call.firm == firm.domain
    assert abs(call.invited_at - invited) < 1
    assert abs(call.talk_seconds - (closed - established)) < 1

    # The PBX recorded the call: both directions, as long as the talk time.
    wav, info = lab.recording_wav(call.call_id)
    assert abs(info["duration"] - call.talk_seconds) <= 1, (info, call)
    assert audio_level(wav, channel=1) > AUDIBLE and audio_level(wav, channel=2) > AUDIBLE
    low, high = sorted(rough_frequency(wav, channel=c) for c in (1, 2))
    assert _close(low, 440) and _close(high, 660), (low, high)


def test_an_outside_call_nobody_can_take_ends_after_the_ring_time_and_is_accounted_as_missed(lab, firm):
    assert "AoR:" not in lab.registered()
    before = len(lab.calls())
    dialled = time.time()
    result = lab.outside_call(to=firm.did, duration=1, port=5094)
    assert not result.answered
    rang_for = result.closed_at - dialled
    assert RING - 1 <= rang_for <= RING + 2, rang_for
    call = lab.wait_calls(before + 1)[-1]
    assert (call.kind, call.disposition, call.answered_at) == ("inbound", "NO ANSWER", None)
    assert call.sip_code in (408, 480)
    assert RING - 1 <= call.ended_at - call.invited_at <= RING + 1


def test_a_ringing_agent_who_never_answers_lets_the_call_end_with_408_after_the_ring_time(lab, firm):
    _agent(lab, firm, "1003", 5075)
    before = len(lab.calls())
    result = lab.outside_call(to=firm.did, duration=1, port=5094)
    assert not result.answered
    call = lab.wait_calls(before + 1)[-1]
    assert (call.disposition, call.sip_code) == ("NO ANSWER", 408)
    assert RING - 1 <= call.ended_at - call.invited_at <= RING + 1
    missed = [r for r in lab.acc_rows("missed_calls") if r["callid"] == call.call_id]
    assert missed, "Kamailio's acc has no record of the missed call"


def test_an_agents_call_to_an_outside_number_leaves_through_the_trunk_and_is_accounted_to_the_second(lab, firm):
    outside = lab.answer_outside()
    agent = _agent(lab, firm, "1002", 5073)
    before = len(lab.calls())
    agent.dial(f"sip:0501234567@{firm.domain}")
    established = agent.wait_event("CALL_ESTABLISHED")["at"]
    outside.wait_event("CALL_ESTABLISHED")
    time.sleep(4)
    agent.hangup()
    closed = agent.wait_event("CALL_CLOSED")["at"]
    outside.wait_event("CALL_CLOSED")
    assert f"1002@{firm.domain}" in outside.wait_event("CALL_ESTABLISHED")["peeruri"]
    heard = outside.heard()[-1]
    assert audio_level(heard) > AUDIBLE and _close(rough_frequency(heard), 660)
    call = lab.wait_calls(before + 1)[-1]
    assert (call.kind, call.disposition, call.answered_by) == ("outbound", "ANSWERED", "1002")
    assert call.to_uri == f"sip:0501234567@{firm.domain}"
    assert abs(call.talk_seconds - (closed - established)) <= 1, (call.talk_seconds, closed - established)


def test_dtmf_from_an_agent_reaches_the_outside_phone_through_rtpengine(lab, firm):
    outside = lab.answer_outside()
    agent = _agent(lab, firm, "1001", 5071)
    agent.dial(f"sip:0501234567@{firm.domain}")
    agent.wait_event("CALL_ESTABLISHED")
    outside.wait_event("CALL_ESTABLISHED")
    time.sleep(0.5)
    agent.send_dtmf("159#")
    deadline = time.time() + 5
    while time.time() < deadline and len([e for e in outside.events if e.get("type") == "CALL_DTMF_START"]) < 4:
        time.sleep(0.1)
    agent.hangup()
    digits = "".join(e.get("param", "") for e in outside.events if e.get("type") == "CALL_DTMF_START")
    assert digits == "159#", [e for e in outside.events if "DTMF" in e.get("type", "")]


def test_after_a_pbx_restart_a_registered_phone_registers_again_and_takes_calls(lab, firm):
    agent = _agent(lab, firm, "1004", 5077, regint=10)
    lab.restart()
    assert "AoR: 1004@" not in lab.registered()
    started = time.monotonic()
    deadline = started + 15
    while time.monotonic() < deadline and "@127.0.0.1:5077" not in lab.registered():
        time.sleep(0.2)
    assert "@127.0.0.1:5077" in lab.registered(), "the phone did not register again within 15 s"
    caller = lab.phone("caller-after-restart", port=5094)
    caller.dial(lab.did_uri(firm.did))
    agent.wait_event("CALL_INCOMING", 5)
    caller.hangup()


_INVITE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 5096)); s.settimeout(5)
msg = ("INVITE sip:{to}@127.0.0.1:5080 SIP/2.0\\r\\nVia: SIP/2.0/UDP 127.0.0.1:5096;branch=z9hG4bK-lab1;rport\\r\\n"
       "Max-Forwards: 70\\r\\nFrom: <sip:outside@127.0.0.1:5096>;tag=t1\\r\\nTo: <sip:{to}@127.0.0.1:5080>\\r\\n"
       "Call-ID: unknown-number-test\\r\\nCSeq: 1 INVITE\\r\\nContact: <sip:outside@127.0.0.1:5096>\\r\\n"
       "Content-Length: 0\\r\\n\\r\\n").format(to=sys.argv[1])
s.sendto(msg.encode(), ("127.0.0.1", 5080))
while True:
    line = s.recv(65535).decode().split("\\r\\n", 1)[0]
    if not line.split()[1].startswith("1"):
        print(line); break
"""


def test_the_trunk_refuses_an_unknown_number(lab):
    import sys

    done = subprocess.run(lab.cmd([sys.executable, "-c", _INVITE, "+966119999999"]), capture_output=True, text=True,
                          timeout=20)
    assert done.stdout.startswith("SIP/2.0 404"), done.stdout + done.stderr


def test_an_agent_blind_transfers_an_outside_caller_to_another_extension_through_the_pbx(lab, firm):
    first = _agent(lab, firm, "1001", 5071)
    second = _agent(lab, firm, "1003", 5075)
    caller = lab.phone("caller-transferred", port=5094)
    before = len(lab.calls())
    caller.dial(lab.did_uri(firm.did))
    first.wait_event("CALL_INCOMING")
    seen = len(second.events)
    first.accept()
    caller.wait_event("CALL_ESTABLISHED")
    second.wait_event("CALL_CLOSED", 5, since=seen)  # the ring group's other branch
    time.sleep(0.5)
    before_transfer = len(caller.events)
    first.command("transfer", f"sip:1003@{firm.domain}")
    # The REFER reached the caller, who calls 1003 back through the trunk.
    incoming = second.wait_event("CALL_INCOMING", 10, since=seen + 1)
    assert "outside@127.0.0.1" in incoming["peeruri"]
    second.accept()
    caller.wait_event("TRANSFER", 5, since=before_transfer)
    caller.wait_event("CALL_ESTABLISHED", 10, since=before_transfer)
    time.sleep(3)
    caller.command("hangup")
    time.sleep(1)
    calls = lab.wait_calls(before + 2, timeout=30)[before:]
    answered_by = sorted(c.answered_by for c in calls if c.disposition == "ANSWERED")
    assert answered_by == ["1001", "1003"], calls
    assert audio_level(second.heard()[-1]) > AUDIBLE and _close(rough_frequency(second.heard()[-1]), 440)


def test_an_outside_call_rings_every_device_of_a_ring_group_larger_than_twelve(lab, firm, tmp_path):
    # Kamailio forks a transaction to at most max_branches devices (12 by default): in a
    # firm with more agents the 13th and later never rang.
    import json
    import sys
    from pathlib import Path

    devices = [5200 + i for i in range(14)]
    steps = [{"op": "register", "port": p, "user": "1001", "domain": firm.domain, "password": firm.passwords["1001"]}
             for p in devices]
    steps += [{"op": "received", "port": devices[0], "wait": 8}]
    steps += [{"op": "received", "port": p, "wait": 0.3} for p in devices[1:]]
    scenario = tmp_path / "many-devices.json"
    scenario.write_text(json.dumps(steps))
    ua = subprocess.Popen(lab.cmd([sys.executable, str(Path(__file__).with_name("sip_udp.py")), str(scenario)]),
                          stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 10
    while time.time() < deadline and lab.registered().count("Contact:") < len(devices):
        time.sleep(0.2)
    assert lab.registered().count("Contact:") == len(devices), lab.registered()
    caller = lab.phone("caller-many", port=5094)
    caller.dial(lab.did_uri(firm.did))
    out, _ = ua.communicate(timeout=40)
    if not caller.has_event("CALL_CLOSED"):
        caller.hangup()
    received = json.loads(out)[len(devices):]
    rang = [p for p, got in zip(devices, received) if any(line.startswith("INVITE ") for line in got)]
    assert rang == devices, received
