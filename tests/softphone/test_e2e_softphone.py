"""The softphone end to end: two agents in Chromium, the real app, a real Kamailio.

The app and the demo firm's PBX (the dev Kamailio on ws://127.0.0.1:8088) are started by
the run command (scripts/run.sh) on a freshly seeded SQLite database.
App, PBX and browser share one network namespace that has only ``lo``, so SIP and media
can only ever flow on loopback (see e2e_support.py). One app start for the whole module.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest

from services import accounts, call_center, clients
from services.models import (
    CallCreate,
    CallDirection,
    CallFilters,
    CallPublic,
    CallStatus,
    ClientCreate,
    ExtensionAssign,
    PbxSettingsIn,
    Role,
)
from services.seed import DEMO_PASSWORD
from tests.softphone import e2e_support as e2e


def expect(*args, **kwargs):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)

pytestmark = [pytest.mark.e2e, pytest.mark.sip]

# The demo firm (services/seed.py): two agents with extensions, and one with an extension
# that no browser ever registers.
CALLER = ("agent@demo.watheeq.local", "1002")
CALLEE = ("agent2@demo.watheeq.local", "1003")
NEVER_REGISTERED = "1004"
REGISTERED_WITHIN_S = 1.0  # docs/PERFORMANCE.md target on loopback


def _sip_password(stack: e2e.Stack, email: str) -> str:
    """The agent's SIP password as the services hand it to their own softphone (random per seed)."""
    with stack.session() as session:
        agent = accounts.authenticate(session=session, email=email, password=DEMO_PASSWORD)
        return call_center.get_extension_for_user(session=session, tenant_id=agent.tenant_id, user_id=agent.user_id).password


def _history(stack: e2e.Stack, email: str) -> list[CallPublic]:
    with stack.session() as session:
        agent = accounts.authenticate(session=session, email=email, password=DEMO_PASSWORD)
        return call_center.get_call_history(
            session=session, tenant_id=agent.tenant_id, actor=agent, filters=CallFilters(), page_size=10
        ).data


def _logged(stack: e2e.Stack, email: str, sip_call_id: str, *, closed: bool = True) -> CallPublic:
    """The agent's call with this Call-ID as their own call history has it, once it is closed."""

    def find():
        for call in _history(stack, email):
            if call.sip_call_id and call.sip_call_id.split(";")[0] == sip_call_id:
                if not closed or call.status not in (CallStatus.RINGING, CallStatus.ANSWERED):
                    return call
        return None

    return e2e.wait_until(find, 10, f"{email}'s log of call {sip_call_id}", interval=0.2)


def _seconds(mark_from: dict, mark_to: dict) -> float:
    return (mark_to["at"] - mark_from["at"]) / 1000


def _open_history(phone: e2e.Phone) -> None:
    phone.page.get_by_role("link", name="Call history").first.click()
    phone.page.wait_for_url(f"{e2e.BASE_URL}/calls", timeout=10_000)
    expect(phone.page.get_by_test_id("call-row").first).to_be_visible(timeout=10_000)


def _history_row(phone: e2e.Phone) -> dict[str, str]:
    """The newest row of the call history page: direction, number, status, duration."""
    row = phone.page.get_by_test_id("call-row").first
    cells = row.locator("td")
    outgoing = cells.nth(1).locator("svg.lucide-phone-outgoing").count() == 1
    incoming = cells.nth(1).locator("svg.lucide-phone-incoming").count() == 1
    return {
        "direction": "OUTBOUND" if outgoing else "INBOUND" if incoming else "?",
        "remote": cells.nth(2).inner_text().strip(),
        "status": cells.nth(5).inner_text().strip(),
        "duration": cells.nth(6).inner_text().strip(),
    }


def _duration_s(text: str) -> int:
    match = re.fullmatch(r"(?:(\d+):)?(\d+):(\d\d)", text)
    assert match, f"not a duration: {text!r}"
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_page_load_registers_the_agents_extension_within_a_second(login, stack):
    phone = login(CALLER)
    figures = []
    for _ in range(3):
        phone.page.reload()
        phone.expect_registered()
        figures.append(phone.mark("reg:registered")["t"] / 1000)
    figures.sort()
    e2e.save_timings("page_load_to_registered_s", {"runs": figures, "median": figures[1], "max": figures[-1]})
    assert stack.pbx.contacts(CALLER[1]) == 1
    assert figures[1] < REGISTERED_WITHIN_S, figures


def test_the_run_commands_pbx_registers_the_agent_over_plain_ws_on_loopback_without_a_certificate(browser, stack):
    # `make run` started the PBX (the test did not), and the browser trusts no extra certificate.
    assert stack.pbx.proc is None and "starting the dev PBX" in stack.app.log() and "ws://127.0.0.1:8088" in stack.app.log()
    assert not [a for a in stack.chromium_args() if "certificate" in a]
    context = browser.new_context(viewport=e2e.VIEWPORT)
    try:
        sockets: list[str] = []
        context.on("page", lambda page: page.on("websocket", lambda ws: sockets.append(ws.url)))
        phone = e2e.sign_in(context, CALLER[0], CALLER[1])
        assert "ws://127.0.0.1:8088/ws" in sockets, sockets
        assert not [url for url in sockets if url.startswith("wss://")], sockets
        [binding] = stack.pbx.sections(CALLER[1])
        assert binding.startswith(f"{CALLER[1]}@al-waha-law-firm.pbx.localhost")
        assert "tcp:127.0.0.1:8088" in binding  # the WebSocket listener
        expect(phone.page.get_by_test_id("softphone-problem")).to_have_count(0)
        e2e.screenshot(phone.page, "registered-over-ws")
    finally:
        for page in context.pages:
            page.goto("about:blank")
        context.close()


def _sign_in_unregistered(browser, email: str, password: str = DEMO_PASSWORD):
    """Signs in; returns the context and the page, whatever state the phone ends up in."""
    context = browser.new_context(viewport=e2e.VIEWPORT)
    page = context.new_page()
    page.goto(f"{e2e.BASE_URL}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{e2e.BASE_URL}/", timeout=20_000)
    return context, page


def _problem_shown(page, text: str) -> None:
    toggle = page.get_by_test_id("softphone-toggle")
    expect(toggle).to_be_visible(timeout=15_000)
    if not page.get_by_test_id("softphone-panel").is_visible():
        toggle.click()
    expect(page.get_by_test_id("softphone-problem")).to_contain_text(text, timeout=15_000)


def test_a_wrong_sip_password_is_named_as_such_in_english_and_arabic(browser, stack):
    # An administrator gives 1001 a new password; the PBX still knows the old one.
    admin_email = "admin@demo.watheeq.local"
    with stack.session() as session:
        owner = accounts.authenticate(session=session, email="owner@demo.watheeq.local", password=DEMO_PASSWORD)
        admin = accounts.authenticate(session=session, email=admin_email, password=DEMO_PASSWORD)
        call_center.assign_extension(session=session, tenant_id=owner.tenant_id, actor=owner,
                                     data=ExtensionAssign(user_id=admin.user_id, extension="1001", password="changed-since-the-pbx-started"))
        session.commit()
    context, page = _sign_in_unregistered(browser, admin_email)
    try:
        expect(page.get_by_test_id("softphone-toggle")).to_have_attribute("data-state", "failed", timeout=15_000)
        _problem_shown(page, "Wrong SIP password for extension 1001: ask an administrator")
        e2e.screenshot(page, "wrong-password")
        page.get_by_test_id("toggle-language").click()
        expect(page.get_by_test_id("softphone-problem")).to_contain_text("كلمة مرور SIP خاطئة للتحويلة 1001")
        page.get_by_test_id("toggle-language").click()
    finally:
        page.goto("about:blank")
        context.close()


def test_a_user_without_an_extension_is_told_so_instead_of_a_missing_phone(browser, stack):
    context, page = _sign_in_unregistered(browser, "manager@demo.watheeq.local")
    try:
        expect(page.get_by_test_id("softphone-toggle")).to_have_attribute("data-state", "unavailable", timeout=15_000)
        _problem_shown(page, "No extension assigned: ask an administrator to assign you one")
    finally:
        context.close()


def test_an_untrusted_wss_certificate_is_explained_with_the_page_to_open(browser, stack):
    # A firm whose PBX on this machine speaks wss with the dev PBX's self-signed certificate.
    with stack.session() as session:
        firm = accounts.create_tenant(session=session, name="Wss Firm")
        owner = accounts.create_user(session=session, tenant_id=firm.id, email="owner@wss.test", password=DEMO_PASSWORD, role=Role.OWNER)
        agent = accounts.create_user(session=session, tenant_id=firm.id, email="agent@wss.test", password=DEMO_PASSWORD, role=Role.AGENT)
        actor = accounts.authenticate(session=session, email=owner.email, password=DEMO_PASSWORD)
        call_center.update_pbx_settings(session=session, tenant_id=firm.id, actor=actor,
                                        data=PbxSettingsIn(host="127.0.0.1", transport="wss", wss_port=8089))
        call_center.assign_extension(session=session, tenant_id=firm.id, actor=actor,
                                     data=ExtensionAssign(user_id=agent.id, extension="1001", password="wss-firm-password"))
        session.commit()
    assert stack.pbx.registered()  # the PBX (and its wss port) is up: only the certificate is in the way
    context, page = _sign_in_unregistered(browser, "agent@wss.test")
    try:
        expect(page.get_by_test_id("softphone-toggle")).to_have_attribute("data-state", "disconnected", timeout=20_000)
        _problem_shown(page, "certificate not trusted: open https://127.0.0.1:8089/ once in this browser")
        e2e.screenshot(page, "certificate-not-trusted")
    finally:
        page.goto("about:blank")
        context.close()


def test_agent_calls_agent_with_media_hold_dtmf_and_both_histories_show_it(login, stack):
    a = login(CALLER)
    b = login(CALLEE)

    a.dial_from_pad(CALLEE[1])
    card = b.page.get_by_test_id("softphone-incoming")
    expect(card).to_be_visible(timeout=10_000)
    expect(b.page.get_by_test_id("softphone-incoming-number")).to_have_text(CALLER[1])
    expect(a.call_state()).to_contain_text("Ringing", timeout=5_000)
    e2e.screenshot(b.page, "incoming")
    dial_to_ring = _seconds(a.mark("dial"), b.mark("call:new"))

    b.page.get_by_test_id("softphone-answer").click()
    a.expect_phase("in-call")
    b.expect_phase("in-call")
    expect(card).to_be_hidden()
    call_id = a.call_id()
    assert b.call_id() == call_id

    # Media both ways, on loopback only.
    a.expect_audio_flowing("caller")
    b.expect_audio_flowing("callee")
    pair = a.page.evaluate("""async () => {
      const pc = window.__watheeqSoftphone.calls()[0].pc; const r = await pc.getStats(); let out = null;
      r.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') out = s; });
      const local = out && r.get(out.localCandidateId), remote = out && r.get(out.remoteCandidateId);
      return out && [local.address, remote.address]; }""")
    assert pair and all(addr in ("127.0.0.1", "::1") for addr in pair), pair
    e2e.screenshot(a.page, "in-call")

    # Hold (re-INVITE, sendonly): the far end stops sending and says so; resume restarts it.
    a.page.get_by_test_id("softphone-hold").click()
    expect(a.call_state()).to_contain_text("On hold")
    expect(b.call_state()).to_contain_text("On hold")
    remote_sdp = "() => window.__watheeqSoftphone.calls()[0].pc.remoteDescription.sdp"
    assert "a=sendonly" in b.page.evaluate(remote_sdp)  # what the re-INVITE offered
    time.sleep(0.4)  # packets already in flight
    held = a.bytes_received()
    time.sleep(0.8)
    assert a.bytes_received() - held < 200, "audio still arrives while on hold"
    e2e.screenshot(a.page, "on-hold")
    a.page.get_by_test_id("softphone-hold").click()
    expect(a.call_state()).to_contain_text("In call")
    expect(b.call_state()).to_contain_text("In call")
    assert "a=sendrecv" in b.page.evaluate(remote_sdp)
    a.expect_audio_flowing("caller after resume")
    b.expect_audio_flowing("callee after resume")

    # DTMF goes out as RFC 2833 telephone-events in the RTP stream (not SIP INFO).
    a.page.evaluate("""() => {
      const pc = window.__watheeqSoftphone.calls()[0].pc;
      const sender = pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
      window.__tones = [];
      sender.dtmf.addEventListener('tonechange', (e) => { if (e.tone) window.__tones.push(e.tone); });
    }""")
    for key in ("1", "5", "#"):
        a.page.get_by_test_id(f"softphone-dtmf-{key}").click()
    e2e.wait_until(lambda: a.page.evaluate("() => window.__tones.join('')") == "15#", 5, "the DTMF tones 1 5 #")
    for side in (a, b):
        sdp = side.page.evaluate("() => window.__watheeqSoftphone.calls()[0].pc.remoteDescription.sdp")
        assert "telephone-event/8000" in sdp

    time.sleep(1.0)
    b.page.get_by_test_id("softphone-hangup").click()
    expect(a.page.get_by_test_id("softphone-wrapup")).to_be_visible(timeout=5_000)
    expect(b.page.get_by_test_id("softphone-wrapup")).to_be_visible(timeout=5_000)
    e2e.screenshot(a.page, "wrap-up")
    talk = {
        "a": _seconds(a.mark("call:accepted"), a.mark("call:ended")),
        "b": _seconds(b.mark("call:accepted"), b.mark("call:ended")),
    }
    assert a.mark("call:ended")["detail"]["originator"] == "remote"

    # The services' call history of each agent.
    out = _logged(stack, CALLER[0], call_id)
    into = _logged(stack, CALLEE[0], call_id)
    assert (out.direction, out.status, out.remote_number, out.extension) == (
        CallDirection.OUTBOUND, CallStatus.COMPLETED, CALLEE[1], CALLER[1])
    assert (into.direction, into.status, into.remote_number, into.extension) == (
        CallDirection.INBOUND, CallStatus.COMPLETED, CALLER[1], CALLEE[1])
    assert abs(out.talk_seconds - talk["a"]) <= 1, (out.talk_seconds, talk)
    assert abs(into.talk_seconds - talk["b"]) <= 1, (into.talk_seconds, talk)
    assert out.answered_at is not None and out.ended_at is not None
    assert out.ended_at.replace(tzinfo=out.ended_at.tzinfo or timezone.utc) <= datetime.now(timezone.utc)

    # The history page of each agent shows the same.
    for phone, logged, direction, remote in ((a, out, "OUTBOUND", CALLEE[1]), (b, into, "INBOUND", CALLER[1])):
        _open_history(phone)
        row = _history_row(phone)
        assert (row["direction"], row["remote"], row["status"]) == (direction, remote, "Completed"), row
        assert _duration_s(row["duration"]) == logged.talk_seconds, row
    e2e.screenshot(a.page, "history")
    e2e.save_timings("dial_to_ringing_at_callee_s", {"value": dial_to_ring})
    assert dial_to_ring < 2.0, dial_to_ring


def test_rejected_call_is_rejected_for_the_caller_and_missed_for_the_callee(login, stack):
    a = login(CALLER)
    b = login(CALLEE)
    a.dial_from_pad(CALLEE[1])
    expect(b.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
    call_id = a.call_id()
    b.page.get_by_test_id("softphone-reject").click()
    expect(b.page.get_by_test_id("softphone-incoming")).to_be_hidden()
    expect(a.page.get_by_test_id("softphone-call")).to_be_hidden(timeout=5_000)
    expect(a.page.get_by_test_id("softphone-outcome")).to_contain_text("Rejected")

    out = _logged(stack, CALLER[0], call_id)
    into = _logged(stack, CALLEE[0], call_id)
    assert out.direction is CallDirection.OUTBOUND and out.status in (CallStatus.REJECTED, CallStatus.BUSY), out
    assert into.direction is CallDirection.INBOUND and into.status is CallStatus.MISSED, into
    assert out.talk_seconds in (None, 0) and into.talk_seconds in (None, 0)
    assert "603" in (out.hangup_cause or ""), out.hangup_cause


def test_call_to_an_unregistered_extension_fails_with_the_cause(login, stack):
    assert stack.pbx.sections(NEVER_REGISTERED) == []
    a = login(CALLER)
    a.dial_from_pad(NEVER_REGISTERED)
    outcome = a.page.get_by_test_id("softphone-outcome")
    expect(outcome).to_contain_text("Not Found", timeout=10_000)
    e2e.screenshot(a.page, "failed")
    call_id = e2e.wait_until(
        lambda: next((m["detail"]["key"] for m in e2e.timeline(a.page) if m["type"] == "call:failed"), None), 5, "the failure"
    )
    assert call_id
    logged = next(c for c in _history(stack, CALLER[0]) if c.remote_number == NEVER_REGISTERED)
    assert logged.direction is CallDirection.OUTBOUND
    assert logged.status is CallStatus.FAILED
    assert logged.hangup_cause == "Not Found (404), remote"
    assert logged.answered_at is None and logged.ended_at is not None


def test_a_call_in_progress_survives_navigating_to_the_call_history_and_back(login, stack):
    a = login(CALLER)
    b = login(CALLEE)
    a.dial_from_pad(CALLEE[1])
    expect(b.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
    b.page.get_by_test_id("softphone-answer").click()
    a.expect_phase("in-call")
    key = a.page.evaluate("() => window.__watheeqSoftphone.calls()[0].key")
    a.page.evaluate("() => { window.__sameDocument = true; }")
    registrations = len([m for m in e2e.timeline(a.page) if m["type"].startswith("reg:")])

    _open_history(a)
    a.expect_phase("in-call")
    a.expect_audio_flowing("caller on the call history page")
    e2e.screenshot(a.page, "in-call-on-history")
    a.page.get_by_role("link", name="Dashboard").first.click()
    a.page.wait_for_url(f"{e2e.BASE_URL}/", timeout=10_000)
    a.expect_phase("in-call")
    a.expect_audio_flowing("caller back on the dashboard")
    b.expect_audio_flowing("callee")

    assert a.page.evaluate("() => window.__sameDocument === true"), "the navigation reloaded the page"
    assert a.page.evaluate("() => window.__watheeqSoftphone.calls().map((c) => c.key)") == [key]
    assert len([m for m in e2e.timeline(a.page) if m["type"].startswith("reg:")]) == registrations, "the phone re-registered"
    a.page.get_by_test_id("softphone-hangup").click()
    expect(b.page.get_by_test_id("softphone-call")).to_be_hidden(timeout=5_000)


def _bindings(stack: e2e.Stack, extension: str) -> list[str]:
    """The contact addresses the registrar holds for this extension (one per user agent)."""
    return [line.strip() for section in stack.pbx.sections(extension)
            for line in section.splitlines() if line.strip().startswith("Address:")]


def test_only_one_tab_of_an_agent_registers_and_another_tab_takes_over_when_it_closes(login, stack):
    first = login(CALLER)
    b = login(CALLEE)
    # A second tab of the same signed-in agent: same browser context, so same storage and locks.
    second = e2e.Phone(first.page.context.new_page(), *CALLER)
    second.page.goto(f"{e2e.BASE_URL}/")
    expect(second.toggle).to_have_attribute("data-state", "follower", timeout=15_000)
    second.open_panel()
    expect(second.page.get_by_test_id("softphone-status")).to_have_text(
        f"Phone open in another tab · Ready · {CALLER[1]}")
    expect(second.page.get_by_test_id("softphone-take-over")).to_be_visible()
    e2e.screenshot(second.page, "follower-tab")
    first.expect_registered()
    assert not [m for m in e2e.timeline(second.page) if m["type"] in ("reg:registering", "reg:registered")]
    bindings = _bindings(stack, CALLER[1])
    assert len(bindings) == 1, bindings

    # A call to the agent rings in the registered tab only; the other one says where it is.
    b.dial_from_pad(CALLER[1])
    expect(first.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=10_000)
    expect(b.call_state()).to_contain_text("Ringing", timeout=5_000)
    expect(second.page.get_by_test_id("softphone-panel")).to_contain_text("A call is in progress in the other tab.")
    time.sleep(0.5)
    assert second.page.get_by_test_id("softphone-incoming").count() == 0
    assert not [m for m in e2e.timeline(second.page) if m["type"] == "call:new"]
    b.page.get_by_test_id("softphone-hangup").click()
    expect(first.page.get_by_test_id("softphone-incoming")).to_be_hidden(timeout=5_000)
    b.page.get_by_test_id("softphone-wrapup-skip").click()

    # The registered tab closes: the other one gets the lock and registers its own binding.
    first.page.close()
    second.expect_registered()
    expect(second.page.get_by_test_id("softphone-status")).to_have_text(f"Ready · {CALLER[1]}")
    taken_over = e2e.wait_until(
        lambda: (lambda now: now if len(now) == 1 and now != bindings else None)(_bindings(stack, CALLER[1])),
        10, f"one new binding of {CALLER[1]}",
    )
    assert taken_over != bindings
    b.dial_from_pad(CALLER[1])
    _expect_rings_at(b, second)


def test_another_tab_takes_the_phone_over_on_request_and_the_first_follows_it(login, stack):
    first = login(CALLER)
    first.expect_registered()
    second = e2e.Phone(first.page.context.new_page(), *CALLER)
    second.page.goto(f"{e2e.BASE_URL}/")
    expect(second.toggle).to_have_attribute("data-state", "follower", timeout=15_000)
    second.open_panel()
    second.page.get_by_test_id("softphone-take-over").click()
    second.expect_registered()
    # The tab that had the phone says it follows the other one now, and is not registered.
    expect(first.toggle).to_have_attribute("data-state", "follower", timeout=10_000)
    first.open_panel()
    expect(first.page.get_by_test_id("softphone-status")).to_have_text(
        f"Phone open in another tab · Ready · {CALLER[1]}")
    e2e.wait_until(lambda: len(_bindings(stack, CALLER[1])) == 1, 10, f"one binding of {CALLER[1]}")
    b = login(CALLEE)
    b.dial_from_pad(CALLER[1])
    _expect_rings_at(b, second)
    time.sleep(0.5)
    assert first.page.get_by_test_id("softphone-incoming").count() == 0
    # And when the tab holding the phone closes, the first one gets it back.
    second.page.close()
    first.expect_registered()


def _skip_wrap_ups(*phones: e2e.Phone) -> None:
    """Closes the wrap-up a call that did not connect leaves on each phone, back to the pad."""
    for phone in phones:
        phone.open_panel()
        expect(phone.page.get_by_test_id("softphone-wrapup")).to_be_visible(timeout=5_000)
        phone.page.get_by_test_id("softphone-wrapup-skip").click()
        expect(phone.page.get_by_test_id("softphone-number")).to_be_visible()


def test_the_user_agent_started_while_the_page_boots_is_adopted_by_the_phone_one_register_per_load(login, stack):
    a = login(CALLER)
    b = login(CALLEE)
    for _ in range(2):
        a.page.reload()
        a.expect_registered()
        types = [m["type"] for m in e2e.timeline(a.page)]
        # early.js started it before the phone mounted, imported by the page's head with the
        # credentials the head asked for (the sign-in's page kept the chunk's URL); the phone
        # took that one over instead of stopping it and starting its own: one user agent,
        # one registration.
        assert types.count("head") == 1 and types.count("sip:head") == 1, types
        assert types.index("head") < types.index("sip:head") < types.index("ua:early"), types
        assert types.count("ua:early") == 1, types
        assert types.count("ua:start") == 1, types
        assert types.count("reg:registering") == 1 and types.count("reg:registered") == 1, types
        assert types.index("ua:early") < types.index("reg:registered"), types
        e2e.wait_until(lambda: stack.pbx.contacts(CALLER[1]) == 1, 10, f"exactly one binding of {CALLER[1]}")
        # The adopted user agent is the phone's: a call rings in it, and it calls out.
        b.dial_from_pad(CALLER[1])
        _expect_rings_at(b, a)
        _skip_wrap_ups(a, b)
        a.dial_from_pad(CALLEE[1])
        _expect_rings_at(a, b)
        _skip_wrap_ups(a, b)
    # Nothing else was started: the bindings stay one.
    assert len(_bindings(stack, CALLER[1])) == 1


def test_a_chunk_kept_by_another_build_is_not_imported_by_the_head_and_the_phone_still_registers_once(login, stack):
    a = login(CALLER)
    hint = a.page.evaluate("() => JSON.parse(localStorage.getItem('watheeq.softphone.early'))")
    assert hint and hint["early"].startswith(e2e.BASE_URL + "/assets/early-"), hint
    # The chunk prefetch.jsx was in, as another build named it: this page's module list does
    # not name it, so the head neither imports the kept chunk nor asks for the credentials.
    other = {**hint, "from": hint["from"].replace("/assets/", "/assets/x-")}
    a.page.evaluate("(h) => localStorage.setItem('watheeq.softphone.early', JSON.stringify(h))", other)
    a.page.reload()
    a.expect_registered()
    types = [m["type"] for m in e2e.timeline(a.page)]
    assert "sip:head" not in types, types
    assert types.count("ua:early") == 1 and types.count("ua:start") == 1, types
    assert types.count("reg:registered") == 1, types
    # The page kept this build's URLs again: the next load starts from the head.
    assert a.page.evaluate("() => JSON.parse(localStorage.getItem('watheeq.softphone.early'))") == hint
    a.page.reload()
    a.expect_registered()
    types = [m["type"] for m in e2e.timeline(a.page)]
    assert types.count("sip:head") == 1 and types.count("ua:start") == 1, types
    # early.js took the head's answer (with the password) off the page.
    assert a.page.evaluate("() => !('__watheeqSoftphoneHead' in window)")
    e2e.wait_until(lambda: stack.pbx.contacts(CALLER[1]) == 1, 10, f"exactly one binding of {CALLER[1]}")


def test_signing_out_and_in_as_another_agent_in_the_same_tab_never_registers_the_first_one_again(login, stack):
    a = login(CALLER)
    # The user agent of this load is the one the page started while it booted (adopted).
    a.page.reload()
    a.expect_registered()
    assert [m for m in e2e.timeline(a.page) if m["type"] == "ua:early"]
    a.page.get_by_test_id("logout").click()
    a.page.wait_for_url(re.compile(r"/login"), timeout=10_000)
    # Signed out: unregistered at once, not left to expire; the browser keeps no trace of the phone's identity.
    e2e.wait_until(lambda: stack.pbx.contacts(CALLER[1]) == 0, 10, f"{CALLER[1]}'s binding gone at sign-out")
    e2e.wait_until(lambda: a.page.evaluate("() => localStorage.getItem('watheeq.softphone.lock')") is None, 5,
                   "the phone's lock name forgotten at sign-out")
    page = a.page
    page.get_by_test_id("login-email").fill(CALLEE[0])
    page.get_by_test_id("login-password").fill(DEMO_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{e2e.BASE_URL}/", timeout=20_000)
    b = e2e.Phone(page, *CALLEE)
    b.expect_registered()
    e2e.wait_until(lambda: stack.pbx.contacts(CALLEE[1]) == 1, 10, f"one binding of {CALLEE[1]}")
    # A reload as the second agent starts (early) and registers the second agent only.
    page.reload()
    b.expect_registered()
    page.get_by_test_id("softphone-toggle").click()
    expect(page.get_by_test_id("softphone-status")).to_have_text(f"Ready · {CALLEE[1]}")
    e2e.wait_until(lambda: stack.pbx.contacts(CALLEE[1]) == 1, 10, f"one binding of {CALLEE[1]}")
    assert stack.pbx.contacts(CALLER[1]) == 0


def test_the_sip_password_is_never_kept_in_the_apps_state(login, stack):
    a = login(CALLER)
    a.expect_registered()
    # Reflex writes each client's state to .states/ after a short debounce.
    time.sleep(3)
    states = list((e2e.ROOT / ".states").glob("*.pkl"))
    assert states, "the app wrote no state to look in"
    password = _sip_password(stack, CALLER[0]).encode()
    assert [p.name for p in states if password in p.read_bytes()] == []


def test_pbx_killed_mid_registration_shows_retrying_and_the_phone_recovers(login, stack, browser):
    # A registered phone loses its PBX ...
    a = login(CALLER)
    stack.pbx.kill()
    expect(a.toggle).to_have_attribute("data-state", "disconnected", timeout=10_000)
    a.open_panel()
    expect(a.page.get_by_test_id("softphone-status")).to_contain_text("Disconnected, retrying")
    # The agent is told in words why, and what to check.
    expect(a.page.get_by_test_id("softphone-problem")).to_contain_text(
        "PBX not reachable at ws://127.0.0.1:8088/ws. Check that the PBX is running")
    e2e.screenshot(a.page, "disconnected")

    # ... and a phone that is registering when the PBX dies (frozen mid-handshake, then killed).
    stack.pbx.start()
    a.expect_registered(timeout=40_000)
    stack.pbx.freeze()
    context = browser.new_context(viewport=e2e.VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{e2e.BASE_URL}/login")
        page.get_by_test_id("login-email").fill(CALLEE[0])
        page.get_by_test_id("login-password").fill(DEMO_PASSWORD)
        page.get_by_test_id("login-submit").click()
        b = e2e.Phone(page, *CALLEE)
        expect(b.toggle).to_have_attribute("data-state", "registering", timeout=20_000)
        time.sleep(0.5)
        stack.pbx.kill()
        expect(b.toggle).to_have_attribute("data-state", "disconnected", timeout=10_000)
        b.open_panel()
        expect(b.page.get_by_test_id("softphone-status")).to_contain_text("Disconnected, retrying")
        stack.pbx.start()
        b.expect_registered(timeout=40_000)
        a.expect_registered(timeout=40_000)
        assert stack.pbx.sections(CALLER[1]) and stack.pbx.sections(CALLEE[1])
        expect(b.page.get_by_test_id("softphone-status")).to_contain_text(f"Ready · {CALLEE[1]}")
        e2e.screenshot(b.page, "recovered")
    finally:
        page.goto("about:blank")
        context.close()


def _log_missed_call(stack: e2e.Stack, email: str, caller: str) -> None:
    """A call from ``caller`` that ``email`` missed just now, as the PBX would have logged it."""
    with stack.session() as session:
        agent = accounts.authenticate(session=session, email=email, password=DEMO_PASSWORD)
        call_center.log_call(
            session=session, tenant_id=agent.tenant_id, actor=agent,
            data=CallCreate(direction=CallDirection.INBOUND, remote_number=caller, status=CallStatus.MISSED,
                            sip_call_id=f"missed-{time.time_ns()}"),
        )
        session.commit()


def _expect_rings_at(a: e2e.Phone, b: e2e.Phone) -> None:
    """A's phone is calling and B's shows A's extension ringing; then A hangs up."""
    card = b.page.get_by_test_id("softphone-incoming")
    expect(card).to_be_visible(timeout=10_000)
    expect(b.page.get_by_test_id("softphone-incoming-number")).to_have_text(a.extension)
    expect(a.call_state()).to_contain_text("Ringing", timeout=5_000)
    a.page.get_by_test_id("softphone-hangup").click()
    expect(card).to_be_hidden(timeout=5_000)


def test_call_back_from_the_call_history_and_the_dashboard_rings_at_the_other_agent(login, stack):
    _log_missed_call(stack, CALLER[0], CALLEE[1])
    a = login(CALLER)
    b = login(CALLEE)

    # The dashboard lists the missed call with a call-back button.
    missed = a.page.get_by_test_id("missed-call").filter(has_text=CALLEE[1]).first
    expect(missed).to_be_visible(timeout=10_000)
    e2e.screenshot(a.page, "dashboard-missed-calls")
    missed.get_by_test_id("missed-call-back").click()
    _expect_rings_at(a, b)

    # The call history's side panel calls the remote number back.
    _open_history(a)
    a.page.get_by_test_id("filter-number").fill(CALLEE[1])
    row = a.page.get_by_test_id("call-row").first
    expect(row.locator("td").nth(2)).to_have_text(CALLEE[1], timeout=10_000)
    row.click()
    call_back = a.page.get_by_test_id("panel-call-back")
    expect(call_back).to_be_visible(timeout=10_000)
    call_back.click()
    expect(a.page.get_by_test_id("call-panel")).to_be_hidden(timeout=5_000)
    _expect_rings_at(a, b)


def test_call_button_on_the_client_page_dials_the_clients_phone(login, stack):
    with stack.session() as session:
        agent = accounts.authenticate(session=session, email=CALLER[0], password=DEMO_PASSWORD)
        client = clients.create_client(
            session=session, tenant_id=agent.tenant_id, data=ClientCreate(name="Click To Call", phone="055 987 6543")
        )
        session.commit()
    a = login(CALLER)
    a.page.goto(f"{e2e.BASE_URL}/clients/{client.id}")
    expect(a.page.get_by_test_id("client-name")).to_have_text("Click To Call", timeout=10_000)
    a.page.get_by_test_id("client-call").click()

    # The phone dials the number as written on the client's page; the PBX lab sends it out
    # through its trunk, where the outside phone answers (media through rtpengine: plain RTP
    # on the trunk side, DTLS-SRTP towards the browser), and the call is logged against
    # that client.
    dialled = a.mark("dial")
    assert dialled["detail"] == "0559876543", dialled
    a.expect_phase("in-call")
    a.expect_audio_flowing("caller (from the outside phone through the trunk)")
    a.page.get_by_test_id("softphone-hangup").click()

    def logged():
        return next((c for c in _history(stack, CALLER[0])
                     if c.client_id == client.id and c.status is CallStatus.COMPLETED), None)

    call = e2e.wait_until(logged, 10, "the call to the client in the log", interval=0.2)
    assert call.direction is CallDirection.OUTBOUND and call.remote_number == "0559876543"


def test_in_arabic_the_phone_shows_arabic_labels_right_to_left(login, stack):
    a = login(CALLER)
    b = login(CALLEE)
    a.page.get_by_test_id("toggle-language").click()
    expect(a.page.locator("html")).to_have_attribute("dir", "rtl")
    a.open_panel()
    panel = a.page.get_by_test_id("softphone-panel")
    expect(panel).to_have_attribute("dir", "rtl")
    expect(a.page.get_by_test_id("softphone-status")).to_contain_text(f"جاهز · {CALLER[1]}")
    expect(a.page.get_by_test_id("softphone-dial")).to_have_text("اتصال")
    expect(a.page.get_by_test_id("softphone-number")).to_have_attribute("placeholder", "رقم أو تحويلة")
    expect(a.toggle).to_have_attribute("aria-label", f"الهاتف: جاهز · {CALLER[1]}")

    a.dial_from_pad(CALLEE[1])
    expect(a.call_state()).to_contain_text("يرن", timeout=10_000)
    expect(a.page.get_by_test_id("softphone-hangup")).to_have_text("إنهاء")
    e2e.screenshot(a.page, "calling-arabic")
    # The callee's page is still in English: each agent has their own language.
    expect(b.page.get_by_test_id("softphone-answer")).to_have_text("Answer", timeout=10_000)
    a.page.get_by_test_id("softphone-hangup").click()
    expect(a.page.get_by_test_id("softphone-outcome")).to_contain_text("لم يتم الاتصال")
    expect(a.page.get_by_test_id("softphone-wrapup-save")).to_have_text("حفظ")

    # Switching back turns the phone's labels back to English at once.
    a.page.get_by_test_id("toggle-language").click()
    expect(panel).to_have_attribute("dir", "ltr")
    expect(a.page.get_by_test_id("softphone-wrapup-save")).to_have_text("Save")
