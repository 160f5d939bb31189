"""A call from the outside world to browser agents, through the PBX lab as `make run` starts
it: the outside phone (baresip on the trunk side) calls the demo firm's DID, both agents'
softphones ring (the ring group forks to their WebSockets, rtpengine offers each ICE +
DTLS-SRTP), one answers, and media flows both ways: DTLS-SRTP to Chromium, plain RTP to
the outside phone. The PBX's own accounting and recording keep the call.

The lab API used here (``Lab(...).phone``, ``calls``, ``recording_wav``) is what the browser
tests of the softphone can use for calls from outside: a ``Lab`` over the stack's PBX folder
and network namespace, never started by the test (the run command started it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from dev.pbx_lab.lab import Lab, audio_level, wav_seconds
from tests.browser import unavailable
from tests.softphone import e2e_support as e2e
from tests.softphone.pbx_lab_support import DEMO_DID


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)


pytestmark = [pytest.mark.e2e, pytest.mark.sip]

FIRST = ("agent@demo.watheeq.local", "1002")
SECOND = ("agent2@demo.watheeq.local", "1003")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[e2e.Stack]:
    reason = e2e.skip_reason()
    if reason:
        unavailable(f"PBX lab e2e cannot run: {reason}")
    from dev.pbx_lab.lab import missing_packages

    if missing_packages():
        unavailable(f"the PBX lab needs {' '.join(missing_packages())}")
    running = e2e.start_stack(tmp_path_factory.mktemp("pbx-lab-e2e"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture
def lab(stack: e2e.Stack):
    lab = Lab(stack.pbx.dir, netns=stack.netns.pid)
    yield lab
    for phone in lab.phones:
        phone.stop()


def test_an_outside_call_to_the_firms_did_rings_both_browser_agents_and_talks_with_the_one_who_answers(
        browser, stack, lab):
    contexts = [browser.new_context(viewport=e2e.VIEWPORT) for _ in range(2)]
    try:
        first, second = (e2e.sign_in(ctx, email, ext) for ctx, (email, ext) in zip(contexts, (FIRST, SECOND)))
        for phone in (first, second):
            e2e.wait_until(lambda p=phone: stack.pbx.contacts(p.extension) == 1, 10, f"{phone.extension} registered")
        before = len(lab.calls())
        caller = lab.phone("outside-caller", port=5094)
        caller.dial(lab.did_uri(DEMO_DID))
        for phone in (first, second):
            expect(phone.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
        second.page.get_by_test_id("softphone-answer").click()
        second.expect_phase("in-call")
        caller.wait_event("CALL_ESTABLISHED", 10)
        # The agent who did not answer stops ringing.
        expect(first.page.get_by_test_id("softphone-incoming")).to_be_hidden(timeout=5_000)
        second.expect_audio_flowing("agent (from the outside phone through rtpengine)")
        time.sleep(3)
        caller.hangup()
        caller.wait_event("CALL_CLOSED", 5)

        heard = caller.heard()[-1]
        assert wav_seconds(heard) > 2.5, "the outside phone heard nothing from the browser"
        call = lab.wait_calls(before + 1)[-1]
        assert (call.kind, call.did, call.disposition, call.answered_by) == ("inbound", DEMO_DID, "ANSWERED", "1003")
        wav, info = lab.recording_wav(call.call_id)
        assert abs(info["duration"] - call.talk_seconds) <= 1, (info, call)
        assert audio_level(wav, channel=1) > 0.05 or audio_level(wav, channel=2) > 0.05
    finally:
        for ctx in contexts:
            ctx.close()
