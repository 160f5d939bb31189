"""The WhatsApp page through a real browser, with the simulator playing the firm's phone.

An admin links the line (a connection error shows with its next try, then the QR appears and rotates), the phone scans it, a message is sent
and followed from pending to delivered, a client writes in and shows up in the conversation
and on the client's timeline, bad input is refused next to its field, and the line is
unlinked after a confirmation. Every known failure shows as a sentence that says what to do,
in English and Arabic, with the raw error only behind an owner's or admin's details toggle;
a message that may not have been sent offers "send again" and "mark as sent".
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import LOGINS, RunningApp, login, screenshot

pytestmark = pytest.mark.e2e

# Read by the app the session starts (the simulator's code rotation): short enough to see a
# rotation within the test, long enough to scan. Nothing else in the suite depends on them.
os.environ.setdefault("WATHEEQ_SIMULATOR_QR_FIRST_SECONDS", "3")
os.environ.setdefault("WATHEEQ_SIMULATOR_QR_NEXT_SECONDS", "3")

FIRM_PHONE = "+966500000777"
# Records every status a message bubble takes, however briefly, in the order seen.
STATUS_RECORDER = """
() => {
  window.__waStatuses = [];
  const seen = (el) => window.__waStatuses.push([el.innerText, el.getAttribute('data-status')]);
  document.querySelectorAll('[data-testid=wa-message]').forEach(seen);
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.matches && r.target.matches('[data-testid=wa-message]')) seen(r.target);
      for (const n of r.addedNodes || []) {
        if (n.nodeType !== 1) continue;
        if (n.matches('[data-testid=wa-message]')) seen(n);
        n.querySelectorAll && n.querySelectorAll('[data-testid=wa-message]').forEach(seen);
      }
    }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['data-status']});
}
"""


def _sim_root(app: RunningApp) -> Path:
    # The app fixture keeps its data folder next to its database.
    return Path(app.database_url.removeprefix("sqlite:///")).parent / "data" / "whatsapp" / "simulator"


def _admin_tenant(services_db) -> int:
    from services.models import User

    with services_db.session_scope() as session:
        return session.execute(sa.select(User.tenant_id).where(User.email == LOGINS["ADMIN"])).scalar_one()


def _a_client(services_db, tenant_id: int, skip: int = 0) -> tuple[int, str, str]:
    from services.models import Client

    with services_db.session_scope() as session:
        row = session.execute(
            sa.select(Client.id, Client.name, Client.phone_e164)
            .where(Client.tenant_id == tenant_id, Client.phone_e164.is_not(None))
            .order_by(Client.id)
            .offset(skip)
            .limit(1)
        ).one()
    return row.id, row.name, row.phone_e164


def _message(services_db, tenant_id: int, body: str):
    from services.models import WhatsappMessage

    with services_db.session_scope() as session:
        return session.execute(
            sa.select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.body == body)
        ).scalar_one_or_none()


def _wait(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_admin_links_the_line_sends_and_receives_then_unlinks(page, app, services_db):
    from services.whatsapp.simulator import enqueue_command

    tenant_id = _admin_tenant(services_db)
    root = _sim_root(app)
    login(page, "ADMIN")
    page.get_by_test_id("nav-nav_whatsapp").click()
    expect(page.get_by_test_id("wa-panel-disconnected")).to_be_visible()
    expect(page.get_by_test_id("wa-simulator")).to_be_visible()

    # Link while WhatsApp cannot be reached: the error and the next try are shown, then the
    # sidecar's retry gets through. The live QR appears, with the steps and a countdown, and rotates.
    enqueue_command(tenant_id, "fail_connects", root=root, count=1, reason="failed to dial whatsapp web websocket")
    page.get_by_test_id("wa-link").click()
    expect(page.get_by_test_id("wa-error")).to_contain_text("This server can't reach WhatsApp", timeout=10_000)
    expect(page.get_by_text("failed to dial whatsapp web websocket")).to_have_count(0)
    expect(page.get_by_test_id("wa-next-retry")).to_contain_text("Next try at")
    screenshot(page, "whatsapp-error")
    qr = page.get_by_test_id("wa-qr")
    expect(qr).to_be_visible(timeout=10_000)
    first = qr.get_attribute("src")
    assert first and first.startswith("data:image/svg+xml")
    expect(page.get_by_test_id("wa-steps")).to_have_text("WhatsApp → Linked devices → Link a device")
    expect(page.get_by_test_id("wa-countdown")).to_contain_text("New code in")
    expect(page.get_by_test_id("whatsapp-status")).to_contain_text("Waiting for QR scan")
    screenshot(page, "whatsapp-qr")
    page.wait_for_function(
        "(first) => { const i = document.querySelector('[data-testid=wa-qr]'); return i && i.src && i.src !== first; }",
        arg=first,
        timeout=10_000,
    )

    # The phone scans: Connected within 1.5 s, with the linked number and name.
    enqueue_command(tenant_id, "scan", root=root, phone=FIRM_PHONE, push_name="Demo Law Firm")
    scanned = time.monotonic()
    expect(page.get_by_test_id("wa-panel-connected")).to_be_visible(timeout=5_000)
    assert time.monotonic() - scanned < 1.5
    expect(page.get_by_test_id("wa-phone")).to_have_text(FIRM_PHONE)
    expect(page.get_by_test_id("wa-push-name")).to_have_text("Demo Law Firm")
    expect(page.get_by_test_id("whatsapp-status")).to_contain_text("Connected")
    screenshot(page, "whatsapp-connected")

    # Bad input is refused next to its field.
    page.get_by_test_id("wa-send-mode").get_by_role("radio", name="To a number").click()
    page.get_by_test_id("wa-send-to").fill("not a number")
    page.get_by_test_id("wa-send-body").fill("hello")
    page.get_by_test_id("wa-send").click()
    expect(page.get_by_test_id("field-error")).to_be_visible()
    page.get_by_test_id("wa-send-body").fill("")
    page.get_by_test_id("wa-send-to").fill("0501234567")
    page.get_by_test_id("wa-send").click()
    expect(page.get_by_test_id("field-error")).to_have_text("a message is required")

    # Send to a client: pending at once, then sent, then delivered by the phone's receipt.
    client_id, client_name, _ = _a_client(services_db, tenant_id)
    page.get_by_test_id("wa-send-mode").get_by_role("radio", name="To a client").click()
    page.get_by_test_id("wa-send-client").click()
    page.get_by_role("option", name=client_name, exact=False).first.click()
    body = f"Your hearing is confirmed {time.time_ns()}"
    page.get_by_test_id("wa-send-body").fill(body)
    page.evaluate(STATUS_RECORDER)
    page.get_by_test_id("wa-send").click()
    bubble = page.get_by_test_id("wa-message").filter(has_text=body)
    expect(bubble).to_be_visible(timeout=5_000)
    expect(bubble).to_have_attribute("data-status", "SENT", timeout=10_000)
    sent = _message(services_db, tenant_id, body)
    assert sent is not None and sent.client_id == client_id and sent.wa_message_id
    enqueue_command(tenant_id, "receipt", root=root, wa_message_ids=[sent.wa_message_id], status="DELIVERED")
    expect(bubble).to_have_attribute("data-status", "DELIVERED", timeout=5_000)
    # SENDING lasts the few milliseconds of the hand-over: seen or not, it sits between the two.
    seen = [status for text, status in page.evaluate("window.__waStatuses") if body in text and status != "SENDING"]
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == ["PENDING", "SENT", "DELIVERED"]
    chat = page.get_by_test_id("wa-chat").filter(has=bubble)
    expect(chat.get_by_test_id("wa-chat-title")).to_have_text(client_name)

    # A client writes in: the message shows in the conversation under the client's name...
    other_id, other_name, other_phone = _a_client(services_db, tenant_id, skip=1)
    inbound = f"Salam, I have a question about my case {time.time_ns()}"
    enqueue_command(tenant_id, "inbound", root=root, from_phone=other_phone, body=inbound, push_name="Not the client's name")
    incoming = page.get_by_test_id("wa-message").filter(has_text=inbound)
    expect(incoming).to_be_visible(timeout=5_000)
    expect(incoming).to_have_attribute("data-direction", "INBOUND")
    expect(page.get_by_test_id("wa-chat").filter(has=incoming).get_by_test_id("wa-chat-title")).to_have_text(other_name)
    screenshot(page, "whatsapp-conversation")

    # ... filters narrow the list ...
    page.get_by_test_id("wa-filter-direction").click()
    page.get_by_role("option", name="Outbound").click()
    expect(incoming).to_have_count(0)
    expect(bubble).to_be_visible()
    page.get_by_text("Clear", exact=True).click()
    expect(incoming).to_be_visible()

    # ... and on the client's timeline, under the client's name.
    page.goto(f"/clients/{other_id}")
    expect(page.get_by_test_id("client-name")).to_have_text(other_name)
    expect(page.get_by_test_id("timeline-entry").filter(has_text=inbound)).to_contain_text(other_name)
    screenshot(page, "whatsapp-client-timeline")

    # Arabic labels.
    page.goto("/whatsapp")
    page.get_by_test_id("toggle-language").click()
    expect(page.get_by_test_id("page-title")).to_have_text("واتساب")
    expect(page.get_by_test_id("wa-panel-connected")).to_contain_text("الرقم المرتبط")
    screenshot(page, "whatsapp-ar")
    page.get_by_test_id("toggle-language").click()

    # Unlink, after a confirmation.
    page.get_by_test_id("wa-unlink").click()
    page.get_by_test_id("wa-unlink-confirm").click()
    expect(page.get_by_test_id("wa-panel-disconnected")).to_be_visible(timeout=10_000)
    expect(page.get_by_test_id("whatsapp-status")).to_contain_text("Not linked")


def test_an_agent_reads_the_line_but_cannot_link_it(page):
    login(page, "AGENT")
    page.goto("/whatsapp")
    expect(page.get_by_test_id("wa-line")).to_be_visible()
    expect(page.get_by_test_id("wa-link")).to_have_count(0)
    expect(page.get_by_test_id("wa-unlink")).to_have_count(0)
    expect(page.get_by_test_id("wa-send")).to_be_visible()


def _sentences(kind: str) -> tuple[str, str]:
    from services.whatsapp.failures import SENTENCES, Failure

    return SENTENCES[Failure(kind)]


def _shows_failure(page, test_id: str, kind: str) -> None:
    """The failure's sentence, in English then Arabic, and its raw text nowhere on the page."""
    from services.whatsapp.simulator import FAILURES

    english, arabic = _sentences(kind)
    notice = page.get_by_test_id(test_id)
    expect(notice).to_have_attribute("data-code", kind, timeout=10_000)
    expect(notice).to_have_text(english)
    raw = FAILURES[kind][0]
    if raw:
        # Not in the visible text, nor anywhere in the document (attributes, hidden nodes).
        assert raw not in page.locator("body").inner_text()
        assert raw not in page.content()
    page.get_by_test_id("toggle-language").click()
    expect(notice).to_have_text(arabic)
    page.get_by_test_id("toggle-language").click()
    expect(notice).to_have_text(english)


def test_each_known_failure_shows_what_to_do_and_the_raw_error_only_in_an_admins_details(page, browser, app, services_db):
    from services.whatsapp.simulator import FAILURES, enqueue_command

    tenant_id = _admin_tenant(services_db)
    root = _sim_root(app)
    login(page, "ADMIN")
    page.goto("/whatsapp")
    expect(page.get_by_test_id("wa-panel-disconnected")).to_be_visible()

    # A server without a route out: the sentence, then the Go error behind the toggle.
    enqueue_command(tenant_id, "failure", root=root, kind="no_route", count=1000)
    page.get_by_test_id("wa-link").click()
    expect(page.get_by_test_id("wa-panel-error")).to_be_visible(timeout=15_000)
    _shows_failure(page, "wa-error", "no_route")
    expect(page.get_by_test_id("wa-next-retry")).to_contain_text("Next try at")
    page.get_by_test_id("wa-error-details-toggle").click()
    expect(page.get_by_test_id("wa-error-detail")).to_contain_text("lookup web.whatsapp.com on 10.255.255.53:53")
    screenshot(page, "whatsapp-failure-details")
    page.get_by_test_id("wa-error-details-toggle").click()
    expect(page.get_by_test_id("wa-error-detail")).to_have_count(0)
    assert FAILURES["no_route"][0] not in page.content()

    for kind in ("proxy_unreachable", "temp_banned", "stream_replaced", "client_outdated", "pairing_failed", "unknown"):
        enqueue_command(tenant_id, "failure", root=root, kind=kind, count=1000)
        _shows_failure(page, "wa-error", kind)
    screenshot(page, "whatsapp-failure-unknown")

    # Unlinked from the phone: the line is down until someone links again.
    enqueue_command(tenant_id, "failure", root=root, kind="logged_out")
    expect(page.get_by_test_id("wa-panel-disconnected")).to_be_visible(timeout=10_000)
    _shows_failure(page, "wa-last-error", "logged_out")

    # A QR nobody scans.
    page.get_by_test_id("wa-link").click()
    expect(page.get_by_test_id("wa-qr")).to_be_visible(timeout=10_000)
    enqueue_command(tenant_id, "failure", root=root, kind="qr_timeout")
    expect(page.get_by_test_id("wa-panel-disconnected")).to_be_visible(timeout=10_000)
    _shows_failure(page, "wa-last-error", "qr_timeout")

    # Someone who may not link the line sees what happened, never the technical details.
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=app.base_url)
    try:
        agent = context.new_page()
        login(agent, "AGENT")
        agent.goto("/whatsapp")
        _shows_failure(agent, "wa-last-error", "qr_timeout")
        expect(agent.get_by_test_id("wa-error-details-toggle")).to_have_count(0)
    finally:
        context.close()


def test_a_message_that_may_not_have_been_sent_asks_a_person_to_decide(page, services_db):
    from services.models import MessageStatus, WhatsappMessage

    tenant_id = _admin_tenant(services_db)
    bodies = [f"Your hearing moved to Monday {time.time_ns()}", f"Please bring the contract {time.time_ns()}"]
    with services_db.session_scope() as session:
        for body in bodies:
            session.add(
                WhatsappMessage(
                    tenant_id=tenant_id,
                    direction="OUTBOUND",
                    status=MessageStatus.UNCERTAIN,
                    chat_jid="966501234567@s.whatsapp.net",
                    remote_e164="+966501234567",
                    body=body,
                    error="sender attempt 0f3a-12 stopped while handing the message to WhatsApp",
                    error_code="send_uncertain",
                )
            )
    login(page, "AGENT")
    page.goto("/whatsapp")
    first, second = (page.get_by_test_id("wa-message").filter(has_text=b) for b in bodies)
    expect(first).to_have_attribute("data-status", "UNCERTAIN")
    expect(first.get_by_test_id("wa-message-error")).to_have_text(_sentences("send_uncertain")[0])
    assert "0f3a-12" not in page.content()
    page.get_by_test_id("toggle-language").click()
    expect(first.get_by_test_id("wa-message-status")).to_have_text("ربما لم تُرسل")
    expect(first.get_by_test_id("wa-message-error")).to_have_text(_sentences("send_uncertain")[1])
    page.get_by_test_id("toggle-language").click()
    screenshot(page, "whatsapp-uncertain")
    first.get_by_test_id("wa-mark-sent").click()
    expect(first).to_have_attribute("data-status", "SENT", timeout=5_000)
    expect(first.get_by_test_id("wa-mark-sent")).to_have_count(0)
    second.get_by_test_id("wa-send-again").click()
    expect(second).not_to_have_attribute("data-status", "UNCERTAIN", timeout=5_000)
    assert _message(services_db, tenant_id, bodies[1]).status in (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.SENT)


def _voice_note(folder: Path) -> tuple[Path, str]:
    """A second of real audio the browser can play: Ogg (sox) when the machine has it, else WAV."""
    import shutil
    import subprocess
    import wave

    if shutil.which("sox"):
        path = folder / "voice-note.ogg"
        subprocess.run(["sox", "-n", "-r", "48000", "-c", "1", str(path), "synth", "1.0", "sine", "440"], check=True, capture_output=True)
        return path, "audio/ogg"
    path = folder / "voice-note.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x10" * 16000)
    return path, "audio/wav"


def test_a_client_sends_a_photo_a_pdf_and_a_voice_note(page, app, services_db, tmp_path):
    import base64
    import hashlib
    import zlib

    from services.whatsapp.simulator import enqueue_command

    tenant_id, root = _linked_line(page, app, services_db)

    # A real PNG (8x8, red), a PDF, and a real audio file.
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 8 for _ in range(8))
    chunk = lambda kind, data: len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")  # noqa: E731
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (8).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00") + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    (tmp_path / "contract.png").write_bytes(png)
    pdf = b"%PDF-1.4\n%" + base64.b64encode(os.urandom(200_000)) + b"\n%%EOF\n"
    (tmp_path / "court-notice.pdf").write_bytes(pdf)
    voice, voice_mime = _voice_note(tmp_path)
    _, _, phone = _a_client(services_db, tenant_id, skip=2)
    stamp = time.time_ns()
    sent_at = time.monotonic()
    for name, mime, body in (("contract.png", "image/png", f"photo {stamp}"), ("court-notice.pdf", "application/pdf", f"pdf {stamp}")):
        enqueue_command(tenant_id, "inbound", root=root, from_phone=phone, body=body, message_type="image" if mime.startswith("image") else "document", media_file=str(tmp_path / name), media_mime=mime)
    enqueue_command(tenant_id, "inbound", root=root, from_phone=phone, body=f"voice {stamp}", message_type="voice", media_file=str(voice), media_mime=voice_mime)

    photo = page.get_by_test_id("wa-message").filter(has_text=f"photo {stamp}")
    image = photo.get_by_test_id("wa-media-image")
    document = page.get_by_test_id("wa-message").filter(has_text=f"pdf {stamp}").get_by_test_id("wa-media-document")
    audio = page.get_by_test_id("wa-message").filter(has_text=f"voice {stamp}").get_by_test_id("wa-media-audio")
    for shown in (image, document, audio):
        expect(shown).to_be_visible(timeout=10_000)
    print(f"\nphoto, PDF and voice note shown {time.monotonic() - sent_at:.2f} s after the phone sent them")
    # The image loaded (a real decoded picture), and opens full size.
    expect(image).to_have_js_property("naturalWidth", 8, timeout=5_000)
    response = page.request.get(image.get_attribute("src"))
    assert response.status == 200 and response.body() == png and response.headers["content-type"] == "image/png"
    # The PDF's link downloads it, byte-identical, under its name.
    download = page.request.get(document.get_attribute("href"))
    assert download.status == 200 and hashlib.sha256(download.body()).hexdigest() == hashlib.sha256(pdf).hexdigest()
    assert download.headers["content-disposition"] == 'attachment; filename="court-notice.pdf"'
    expect(document).to_contain_text("court-notice.pdf")
    # Range requests are honoured.
    part = page.request.get(document.get_attribute("href").replace("&download=true", ""), headers={"Range": "bytes=0-99"})
    assert part.status == 206 and part.body() == pdf[:100]
    # The voice note plays to its end.
    audio.evaluate("a => { a.muted = true; return a.play(); }")
    page.wait_for_function("a => a.ended", arg=audio.element_handle(), timeout=10_000)
    # A link not signed by the server reads nothing.
    assert page.request.get(image.get_attribute("src").replace("sig=", "sig=x")).status in (401, 403)
    screenshot(page, "whatsapp-media")

    # An agent sends a PDF with a caption: the phone gets the same bytes; ticks go sent -> delivered -> read.
    import json

    outgoing = tmp_path / "engagement-letter.pdf"
    letter = b"%PDF-1.4\n%" + base64.b64encode(os.urandom(150_000)) + b"\n%%EOF\n"
    outgoing.write_bytes(letter)
    page.get_by_test_id("wa-send-mode").get_by_role("radio", name="To a number").click()
    page.get_by_test_id("wa-send-to").fill(phone)
    caption = f"Your engagement letter {stamp}"
    page.get_by_test_id("wa-send-body").fill(caption)
    page.get_by_test_id("wa-attach").locator("input[type=file]").set_input_files(str(outgoing))
    page.get_by_test_id("wa-send-file").click()
    bubble = page.get_by_test_id("wa-message").filter(has_text=caption)
    expect(bubble).to_have_attribute("data-status", "SENT", timeout=10_000)
    log = root / "sent" / f"tenant-{tenant_id}.jsonl"
    (record,) = [r for r in (json.loads(line) for line in log.read_text().splitlines() if line) if r.get("body") == caption]
    assert record["media_sha256"] == hashlib.sha256(letter).hexdigest() and record["media_name"] == "engagement-letter.pdf"
    assert (root / "received-media" / f"tenant-{tenant_id}" / record["media_sha256"]).read_bytes() == letter
    for status in ("DELIVERED", "READ"):
        enqueue_command(tenant_id, "receipt", root=root, wa_message_ids=[record["wa_message_id"]], status=status)
        expect(bubble).to_have_attribute("data-status", status, timeout=5_000)
    expect(bubble.get_by_test_id("wa-media-document")).to_contain_text("engagement-letter.pdf")


def test_while_the_sidecar_is_stopped_the_page_says_the_service_is_not_running(page, app, services_db):
    """The sidecar frozen (SIGSTOP: it can neither work nor renew its lease) stands for one that
    died: within the lease the page and the header say the service is not running, not a
    stale CONNECTED; resumed, the line is CONNECTED again."""
    import signal

    _, root = _linked_line(page, app, services_db)
    lock = root.parent / "sidecars" / "sidecar-1.lock"
    supervisor = int(lock.read_text().split()[0])
    os.killpg(supervisor, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        notice = page.get_by_test_id("wa-service-down")
        # The default lease is 30 s; the page's watcher reads the status every 0.3 s.
        expect(notice).to_be_visible(timeout=40_000)
        print(f"\nsidecar stopped -> page says the service is not running: {time.monotonic() - stopped:.1f} s")
        expect(notice).to_contain_text("WhatsApp service not running since ")
        expect(notice).to_contain_text("messages are queued")
        expect(page.get_by_test_id("wa-panel-connected")).to_have_count(0)
        expect(page.get_by_test_id("whatsapp-status")).to_contain_text("service not running")
        screenshot(page, "whatsapp-service-down")
    finally:
        os.killpg(supervisor, signal.SIGCONT)
    expect(page.get_by_test_id("wa-panel-connected")).to_be_visible(timeout=15_000)


def _linked_line(page, app, services_db) -> tuple[int, Path]:
    """The admin on the WhatsApp page with the firm's line CONNECTED (linked now if it was not)."""
    from services.whatsapp.simulator import enqueue_command

    login(page, "ADMIN")
    tenant_id = _admin_tenant(services_db)
    root = _sim_root(app)
    page.goto("/whatsapp")
    page.locator("[data-testid=wa-panel-connected], [data-testid=wa-panel-disconnected]").first.wait_for(timeout=15_000)
    if page.get_by_test_id("wa-panel-connected").count() == 0:
        page.get_by_test_id("wa-link").click()
        expect(page.get_by_test_id("wa-qr")).to_be_visible(timeout=15_000)
        enqueue_command(tenant_id, "scan", root=root, phone=FIRM_PHONE, push_name="Firm Phone")
    expect(page.get_by_test_id("wa-panel-connected")).to_be_visible(timeout=15_000)
    return tenant_id, root


def test_an_admin_caps_first_contacts_and_a_temporary_ban_pauses_sending_with_its_reason(page, app, services_db):
    """Guardrails from the page: a bad cap is refused next to its field and changes nothing; with
    the cap set, the first message to a new number goes and the next is refused with the cap's
    sentence on it; a temporary ban from WhatsApp shows its reason code and end, and nothing is
    sent while it lasts."""
    from services.models import WhatsappSession
    from services.whatsapp import guardrails
    from services.whatsapp.simulator import enqueue_command

    tenant_id, root = _linked_line(page, app, services_db)
    with services_db.session_scope() as session:
        used = guardrails.first_contacts_today(session, tenant_id)
        cap_before = session.execute(sa.select(WhatsappSession.first_contact_daily_cap).where(WhatsappSession.tenant_id == tenant_id)).scalar_one()
    cap_input = page.get_by_test_id("wa-cap-input")
    for bad in ("many", "1001", "-1"):
        cap_input.fill(bad)
        page.get_by_test_id("wa-cap-save").click()
        expect(page.get_by_test_id("wa-cap-error")).to_be_visible(timeout=5_000)
    with services_db.session_scope() as session:
        assert session.execute(sa.select(WhatsappSession.first_contact_daily_cap).where(WhatsappSession.tenant_id == tenant_id)).scalar_one() == cap_before
    cap_input.fill(str(used + 1))
    page.get_by_test_id("wa-cap-save").click()
    expect(page.get_by_test_id("wa-cap-saved")).to_be_visible(timeout=5_000)
    expect(page.get_by_test_id("wa-first-contacts")).to_contain_text(f"of {used + 1}")

    stamp = time.time_ns() % 10_000_000
    first, second = f"050{stamp:07d}", f"050{(stamp + 1) % 10_000_000:07d}"  # never wrote to the firm
    page.get_by_test_id("wa-send-mode").get_by_role("radio", name="To a number").click()
    for number in (first, second):
        page.get_by_test_id("wa-send-to").fill(number)
        page.get_by_test_id("wa-send-body").fill(f"first contact {number}")
        page.get_by_test_id("wa-send").click()
        expect(page.get_by_test_id("wa-send-body")).to_have_value("", timeout=5_000)
    expect(page.get_by_test_id("wa-message").filter(has_text=f"first contact {first}")).to_have_attribute("data-status", "SENT", timeout=10_000)
    refused = page.get_by_test_id("wa-message").filter(has_text=f"first contact {second}")
    expect(refused).to_have_attribute("data-status", "FAILED", timeout=10_000)
    expect(refused.get_by_test_id("wa-message-error")).to_contain_text("today's cap on first messages")
    expect(page.get_by_test_id("wa-first-contacts")).to_contain_text(f"{used + 1} of {used + 1}")

    # WhatsApp bans the number for a minute: the reason and the end show, and a message waits.
    enqueue_command(tenant_id, "temporary_ban", root=root, code="SEND_TO_TOO_MANY_PEOPLE", seconds=60)
    ban = page.get_by_test_id("wa-ban")
    expect(ban).to_be_visible(timeout=10_000)
    expect(ban).to_have_attribute("data-code", "SEND_TO_TOO_MANY_PEOPLE")
    expect(ban).to_contain_text("SEND_TO_TOO_MANY_PEOPLE")
    screenshot(page, "whatsapp-temporary-ban")
    page.get_by_test_id("wa-send-to").fill(first)
    page.get_by_test_id("wa-send-body").fill(f"during the ban {stamp}")
    page.get_by_test_id("wa-send").click()
    waiting = page.get_by_test_id("wa-message").filter(has_text=f"during the ban {stamp}")
    expect(waiting).to_be_visible(timeout=5_000)
    time.sleep(3)
    assert waiting.get_attribute("data-status") == "PENDING"
    log = root / "sent" / f"tenant-{tenant_id}.jsonl"
    assert f"during the ban {stamp}" not in (log.read_text() if log.exists() else "")
