"""The softphone against the PBX lab (dev/pbx_lab/lab.py), as `make run` starts it: calls
from the outside world through the trunk to the firm's ring group, agents' calls out
through the trunk, and the blind transfer of an outside caller from one agent to another,
with rtpengine relaying the media.

Two agents in one Chromium whose fake microphone plays the lab's agent tone (660 Hz); the
outside phones (baresip) play 440 Hz and record what they hear, so a frequency tells which
way the audio went. Everything in the loopback-only namespace of e2e_support.
"""

from __future__ import annotations

import time

import pytest

from services import accounts, call_center, clients
from services.models import CallDirection, CallFilters, CallPublic, CallStatus, ClientCreate
from services.seed import DEMO_PASSWORD
from tests.softphone import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.sip]

# The lab comes with the pbxlab branch; until it is merged there is nothing to run here.
_lab = pytest.importorskip("dev.pbx_lab.lab", reason="the PBX lab (dev/pbx_lab) is not in this tree")
Lab, audio_level, rough_frequency, wav_seconds = _lab.Lab, _lab.audio_level, _lab.rough_frequency, _lab.wav_seconds

A = ("agent@demo.watheeq.local", "1002")
B = ("agent2@demo.watheeq.local", "1003")
OWNER = "owner@demo.watheeq.local"
DID = "+966110000000"  # the demo firm's number on the lab's trunk (services/seed.py)
OUTSIDE_NUMBER = "0551234567"
CALLER_NUMBER, CALLER_CLIENT = "0557001122", "Lab Caller Trading Co."  # a client who calls the firm
AUDIBLE = 0.05  # RMS of a recording; the tones play at 0.5, silence is ~0.0
AGENT_TONE, OUTSIDE_TONE = 660, 440


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)


@pytest.fixture(scope="module")
def browser(stack: e2e.Stack):
    # The agents speak the lab's agent tone, so the far end can tell they were heard.
    tone = stack.pbx.dir / "play-agent.wav"
    e2e.wait_until(tone.exists, 10, "the lab's sound files")
    with e2e.chromium(stack, (f"--use-file-for-fake-audio-capture={tone}",)) as chromium:
        yield chromium


@pytest.fixture
def lab(stack: e2e.Stack):
    """The lab the run command started (its folder, its namespace); the test's phones go with it."""
    running = Lab(stack.pbx.dir, netns=stack.netns.pid)
    yield running
    for phone in running.phones:
        phone.stop()


def _seed_client(stack: e2e.Stack, name: str, phone: str) -> int:
    """A client of the demo firm with this phone number (once per module's database)."""
    with stack.session() as session:
        owner = accounts.authenticate(session=session, email=OWNER, password=DEMO_PASSWORD)
        known = clients.match_number(session=session, tenant_id=owner.tenant_id, e164="+966" + phone[1:])
        if known is not None:
            return known.id
        client = clients.create_client(session=session, tenant_id=owner.tenant_id,
                                       data=ClientCreate(name=name, phone=phone))
        session.commit()
        return client.id


def _user_id(stack: e2e.Stack, email: str) -> int:
    with stack.session() as session:
        return accounts.authenticate(session=session, email=email, password=DEMO_PASSWORD).user_id


def _firm_history(stack: e2e.Stack) -> list[CallPublic]:
    """The whole firm's call history, as its owner sees it."""
    with stack.session() as session:
        owner = accounts.authenticate(session=session, email=OWNER, password=DEMO_PASSWORD)
        return call_center.get_call_history(
            session=session, tenant_id=owner.tenant_id, actor=owner, filters=CallFilters(), page_size=50
        ).data


# Sum of the audio energy and bytes received on the call with `remote`.
JS_AUDIO_FROM = """async (remote) => {
  const c = window.__watheeqSoftphone.calls().find((x) => x.remote === remote);
  if (!c || !c.pc) return null;
  const report = await c.pc.getStats();
  let energy = 0, bytes = 0;
  report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") { energy += s.totalAudioEnergy || 0; bytes += s.bytesReceived || 0; } });
  return { energy, bytes };
}"""


def _hears(phone: e2e.Phone, remote: str) -> None:
    """Sound (not just packets) from ``remote`` keeps arriving at the agent's browser."""
    start = e2e.wait_until(lambda: phone.page.evaluate(JS_AUDIO_FROM, remote), 5, f"a call with {remote}")
    e2e.wait_until(
        lambda: (now := phone.page.evaluate(JS_AUDIO_FROM, remote)) and now["bytes"] > start["bytes"] + 500
        and now["energy"] > start["energy"] + 0.05,
        8, f"{phone.extension}: audio from {remote}",
    )


def _tone(wav, expected: int) -> bool:
    return audio_level(wav) > AUDIBLE and abs(rough_frequency(wav) - expected) < expected * 0.1


def test_an_outside_call_rings_both_agents_one_answers_both_ways_the_other_stops_ringing_and_one_call_is_logged(
        login, stack, lab):
    client_id = _seed_client(stack, CALLER_CLIENT, CALLER_NUMBER)
    a, b = login(A), login(B)
    before = {c.id for c in _firm_history(stack)}
    accounted = len(lab.calls())

    # The caller's number comes in on the trunk; the firm knows it as a client's.
    caller = lab.phone("caller", port=5094, number=CALLER_NUMBER)
    caller.dial(lab.did_uri(DID))
    for agent in (a, b):
        expect(agent.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
        expect(agent.page.get_by_test_id("softphone-incoming-client")).to_have_text(CALLER_CLIENT, timeout=5_000)
    number = a.page.get_by_test_id("softphone-incoming-number").inner_text()
    e2e.screenshot(b.page, "lab-ring-group")
    time.sleep(2)  # it rings a while, so the ring seconds are more than a rounding
    a.page.get_by_test_id("softphone-answer").click()
    a.expect_phase("in-call")
    caller.wait_event("CALL_ESTABLISHED")
    # The colleague's phone stops ringing at once, and it was not a call B missed.
    expect(b.page.get_by_test_id("softphone-incoming")).to_be_hidden(timeout=5_000)
    b.mark("call:answered-elsewhere")
    expect(b.page.get_by_test_id("softphone-call")).to_have_count(0)

    _hears(a, number)
    time.sleep(3)
    caller.hangup()
    caller.wait_event("CALL_CLOSED")
    expect(a.page.get_by_test_id("softphone-wrapup")).to_be_visible(timeout=5_000)
    heard = caller.heard()[-1]
    assert wav_seconds(heard) > 2.5 and _tone(heard, AGENT_TONE), (audio_level(heard), rough_frequency(heard))

    # The firm's history has that call once: A's, answered.
    def logged():
        new = [c for c in _firm_history(stack) if c.id not in before]
        return new if new and all(c.status is not CallStatus.RINGING and c.status is not CallStatus.ANSWERED
                                  for c in new) else None

    new = e2e.wait_until(logged, 10, "the call in the firm's history")
    time.sleep(1)  # a late event of B's phone would add its row now
    new = [c for c in _firm_history(stack) if c.id not in before]
    assert len(new) == 1, [(c.extension, c.status) for c in new]
    [call] = new
    assert (call.direction, call.status, call.extension) == (CallDirection.INBOUND, CallStatus.COMPLETED, A[1])
    assert (call.client_id, call.client_name) == (client_id, CALLER_CLIENT)
    assert call.agent_user_id == _user_id(stack, A[0]) != _user_id(stack, B[0])
    assert call.talk_seconds and call.talk_seconds >= 2
    assert call.ring_seconds and call.ring_seconds >= 2
    # And the PBX's own record agrees: who answered, and how long it rang and talked.
    [row] = lab.wait_calls(accounted + 1)[accounted:]
    assert (row.kind, row.did, row.disposition, row.answered_by) == ("inbound", DID, "ANSWERED", A[1])
    assert CALLER_NUMBER in row.from_uri
    assert abs(call.ring_seconds - (row.answered_at - row.invited_at)) <= 1, (call.ring_seconds, row)
    assert abs(call.talk_seconds - row.talk_seconds) <= 1, (call.talk_seconds, row.talk_seconds)


def test_an_agents_call_to_an_outside_number_leaves_through_the_trunk_and_is_logged_outbound(login, stack, lab):
    a = login(A)
    accounted = len(lab.calls())
    outside_heard = stack.pbx.dir / "outside-phone" / "heard"
    earlier = set(outside_heard.glob("dump-*-dec.wav"))

    a.dial_from_pad(OUTSIDE_NUMBER)
    a.expect_phase("in-call", timeout=15_000)  # the lab's outside phone answers every call
    call_id = a.call_id()
    _hears(a, OUTSIDE_NUMBER)
    time.sleep(2)
    a.page.get_by_test_id("softphone-hangup").click()
    expect(a.page.get_by_test_id("softphone-wrapup")).to_be_visible(timeout=5_000)

    def logged():
        with stack.session() as session:
            agent = accounts.authenticate(session=session, email=A[0], password=DEMO_PASSWORD)
            rows = call_center.get_call_history(session=session, tenant_id=agent.tenant_id, actor=agent,
                                                filters=CallFilters(), page_size=10).data
        return next((c for c in rows if c.sip_call_id and c.sip_call_id.split(";")[0] == call_id
                     and c.status is CallStatus.COMPLETED), None)

    call = e2e.wait_until(logged, 10, "the outbound call in A's history", interval=0.2)
    assert (call.direction, call.remote_number, call.extension) == (CallDirection.OUTBOUND, OUTSIDE_NUMBER, A[1])
    assert call.talk_seconds and call.talk_seconds >= 2
    [row] = lab.wait_calls(accounted + 1)[accounted:]
    assert (row.kind, row.disposition, row.answered_by, row.call_id) == ("outbound", "ANSWERED", A[1], call_id)
    # The firm's log and the PBX's accounting agree on how long they talked.
    assert abs(call.talk_seconds - row.talk_seconds) <= 1, (call.talk_seconds, row.talk_seconds)
    # The outside world heard the agent.
    heard = e2e.wait_until(lambda: sorted(set(outside_heard.glob("dump-*-dec.wav")) - earlier), 5,
                           "the outside phone's recording")[-1]
    assert _tone(heard, AGENT_TONE), (audio_level(heard), rough_frequency(heard))


def test_an_outside_caller_blind_transferred_from_one_agent_to_another_talks_to_the_second(login, stack, lab):
    a, b = login(A), login(B)
    caller = lab.phone("caller-transferred", port=5096)
    caller.dial(lab.did_uri(DID))
    expect(a.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
    number = a.page.get_by_test_id("softphone-incoming-number").inner_text()
    a.page.get_by_test_id("softphone-answer").click()
    a.expect_phase("in-call")
    caller.wait_event("CALL_ESTABLISHED")
    expect(b.page.get_by_test_id("softphone-incoming")).to_be_hidden(timeout=5_000)
    _hears(a, number)

    # A sends the caller on to B: the caller's phone follows the REFER and calls B.
    a.page.get_by_test_id("softphone-transfer-input").fill(B[1])
    a.page.get_by_test_id("softphone-transfer").click()
    card = b.page.get_by_test_id("softphone-incoming")
    expect(card).to_be_visible(timeout=10_000)
    b.page.get_by_test_id("softphone-answer").click()
    b.expect_phase("in-call")
    # A is out of the call and told it went through; B talks with the caller both ways.
    outcome = a.page.get_by_test_id("softphone-outcome")
    expect(outcome).to_have_attribute("data-outcome", "transferred", timeout=10_000)
    expect(outcome).to_have_text(f"Transferred to {B[1]}")
    assert a.page.evaluate("() => window.__watheeqSoftphone.calls().length") == 0
    remote = b.page.get_by_test_id("softphone-call").get_attribute("data-remote")
    _hears(b, remote)
    heard_before = len(caller.heard())
    time.sleep(3)
    caller.hangup()
    expect(b.page.get_by_test_id("softphone-wrapup")).to_be_visible(timeout=10_000)
    heard = caller.heard()[heard_before - 1 if heard_before else 0:]
    assert any(wav_seconds(w) > 2.5 and _tone(w, AGENT_TONE) for w in heard), \
        [(w.name, audio_level(w), rough_frequency(w)) for w in heard]


def test_dtmf_from_the_browsers_keypad_reaches_the_outside_phone_through_rtpengine(login, stack, lab):
    a = login(A)
    caller = lab.phone("caller-dtmf", port=5098)
    caller.dial(lab.did_uri(DID))
    expect(a.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
    a.page.get_by_test_id("softphone-answer").click()
    a.expect_phase("in-call")
    caller.wait_event("CALL_ESTABLISHED")
    a.open_panel()
    for key in "159#":
        a.page.get_by_test_id(f"softphone-dtmf-{key}").click()
        time.sleep(0.3)  # JsSIP queues tones; a pause keeps each its own event at the far end

    def heard_digits():
        got = [e for e in caller.events if e.get("type") == "CALL_DTMF_START"]
        return got if len(got) >= 4 else None

    try:
        e2e.wait_until(heard_digits, 5, "four DTMF digits at the outside phone")
    finally:
        caller.hangup()
    digits = "".join(e.get("param", "") for e in caller.events if e.get("type") == "CALL_DTMF_START")
    assert digits == "159#", [e for e in caller.events if "DTMF" in e.get("type", "")]


def test_outside_calls_one_after_another_to_a_ring_group_of_two_browsers_all_ring_and_the_pbx_stays_up(
        login, stack, lab):
    # Kamailio 5.6.3's lookup_branches() freed a browser contact's +sip.instance twice; the
    # worker that took the next such call segfaulted and the PBX went down on the third call.
    a, b = login(A), login(B)
    for n in range(4):
        caller = lab.phone(f"caller-series-{n}", port=5110 + 2 * n)  # RTP clear of rtpengine's ports
        caller.dial(lab.did_uri(DID))
        for agent in (a, b):
            expect(agent.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
        (a if n % 2 == 0 else b).page.get_by_test_id("softphone-answer").click()
        caller.wait_event("CALL_ESTABLISHED")
        caller.hangup()
        caller.wait_event("CALL_CLOSED")
        for agent in (a, b):
            expect(agent.page.get_by_test_id("softphone-call")).to_have_count(0, timeout=10_000)
            expect(agent.page.get_by_test_id("softphone-incoming")).to_have_count(0)
        caller.stop()
    assert "freeing already freed pointer" not in stack.pbx.log()
    for agent in (a, b):
        agent.expect_registered(timeout=1_000)
    assert [e["type"] for e in e2e.timeline(a.page) if e["type"] == "reg:disconnected"] == []
