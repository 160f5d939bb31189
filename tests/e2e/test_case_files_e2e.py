"""Case files through a real browser, with the simulator playing the client's phone: a PDF the
client sends is saved to their case in one click, the client's page lists it with where it came
from and downloads it byte-identical, and an agent sends that case document back to the client,
whose phone receives the same bytes."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import LOGINS, RunningApp, login, screenshot

pytestmark = pytest.mark.e2e

FIRM_PHONE = "+966500000778"


def _sim_root(app: RunningApp) -> Path:
    return Path(app.database_url.removeprefix("sqlite:///")).parent / "data" / "whatsapp" / "simulator"


def _tenant_of(services_db, role: str) -> int:
    from services.models import User

    with services_db.session_scope() as session:
        return session.execute(sa.select(User.tenant_id).where(User.email == LOGINS[role])).scalar_one()


def _client_with_a_case(services_db, tenant_id: int, stamp: int) -> tuple[int, str, str, str]:
    """A client of the firm with a number of their own and one case: (id, name, number, case title)."""
    from services import clients
    from services.models import ClientCreate

    local = f"050{random.randint(1_000_000, 9_999_999)}"  # 050: a mobile prefix (052 is not one)
    name = f"AAA Case files {stamp}"
    title = f"Tenancy claim {stamp}"
    with services_db.session_scope() as session:
        client = clients.create_client(session=session, tenant_id=tenant_id, data=ClientCreate(name=name, phone=local))
        clients.create_case(session=session, tenant_id=tenant_id, client_id=client.id, title=title, reference=f"TC-{stamp % 10_000}")
    assert client.phone_e164
    return client.id, name, client.phone_e164, title


def test_a_received_pdf_is_saved_to_a_case_listed_downloaded_and_sent_back(page, browser, app, services_db, tmp_path):
    from services.whatsapp.simulator import enqueue_command

    tenant_id = _tenant_of(services_db, "ADMIN")
    assert _tenant_of(services_db, "AGENT") == tenant_id
    root = _sim_root(app)
    stamp = time.time_ns()
    client_id, client_name, number, case_title = _client_with_a_case(services_db, tenant_id, stamp)

    # The admin links the line if it is not linked yet.
    login(page, "ADMIN")
    page.goto("/whatsapp")
    page.locator("[data-testid=wa-panel-connected], [data-testid=wa-panel-disconnected]").first.wait_for(timeout=15_000)
    if page.get_by_test_id("wa-panel-connected").count() == 0:
        page.get_by_test_id("wa-link").click()
        expect(page.get_by_test_id("wa-qr")).to_be_visible(timeout=15_000)
        enqueue_command(tenant_id, "scan", root=root, phone=FIRM_PHONE, push_name="Firm Phone")
    expect(page.get_by_test_id("wa-panel-connected")).to_be_visible(timeout=15_000)

    # An agent, in a browser of their own.
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=app.base_url)
    context.set_default_timeout(20_000)
    agent = context.new_page()
    try:
        login(agent, "AGENT")
        agent.goto("/whatsapp")
        expect(agent.get_by_test_id("wa-panel-connected")).to_be_visible(timeout=15_000)

        # The client sends a PDF.
        pdf = b"%PDF-1.4\n%" + base64.b64encode(os.urandom(180_000)) + b"\n%%EOF\n"
        (tmp_path / "lease-contract.pdf").write_bytes(pdf)
        body = f"my lease {stamp}"
        enqueue_command(
            tenant_id, "inbound", root=root, from_phone=number, body=body, message_type="document",
            media_file=str(tmp_path / "lease-contract.pdf"), media_mime="application/pdf",
        )
        bubble = agent.get_by_test_id("wa-message").filter(has_text=body)
        expect(bubble.get_by_test_id("wa-media-document")).to_be_visible(timeout=10_000)

        # Saved to the client's case with one click on the case; the page confirms it.
        bubble.get_by_test_id("wa-save-to-case").click()
        agent.get_by_test_id("wa-save-case-option").filter(has_text=case_title).click()
        expect(bubble.get_by_test_id("wa-saved-to-case")).to_contain_text(case_title, timeout=10_000)
        screenshot(agent, "case-file-saved")

        # The client's page lists it under the case, with where it came from, and downloads it.
        agent.goto(f"/clients/{client_id}")
        case = agent.get_by_test_id("client-case").filter(has_text=case_title)
        item = case.get_by_test_id("case-file").filter(has_text="lease-contract.pdf")
        expect(item).to_be_visible(timeout=10_000)
        expect(item.get_by_test_id("case-file-source")).to_contain_text(f"WhatsApp from {number}")
        href = item.get_by_test_id("case-file-download").get_attribute("href")
        download = agent.request.get(href)
        assert download.status == 200 and hashlib.sha256(download.body()).hexdigest() == hashlib.sha256(pdf).hexdigest()
        assert download.headers["content-disposition"] == 'attachment; filename="lease-contract.pdf"'
        part = agent.request.get(href, headers={"Range": "bytes=0-99"})
        assert part.status == 206 and part.body() == pdf[:100]
        # A link not signed by the server reads nothing.
        assert agent.request.get(href.replace("sig=", "sig=x")).status in (401, 403)
        screenshot(agent, "case-files-on-client")

        # The agent sends that case document back to the client from the send form.
        agent.goto("/whatsapp")
        expect(agent.get_by_test_id("wa-panel-connected")).to_be_visible(timeout=15_000)
        agent.get_by_test_id("wa-send-client").click()
        agent.get_by_role("option", name=client_name, exact=False).first.click()
        agent.get_by_test_id("wa-send-document-select").click()
        agent.get_by_role("option", name="lease-contract.pdf", exact=False).first.click()
        caption = f"Your signed lease {stamp}"
        agent.get_by_test_id("wa-send-body").fill(caption)
        agent.get_by_test_id("wa-send-document").click()
        sent = agent.get_by_test_id("wa-message").filter(has_text=caption)
        expect(sent).to_have_attribute("data-status", "SENT", timeout=10_000)
        expect(sent.get_by_test_id("wa-media-document")).to_contain_text("lease-contract.pdf")
        log = root / "sent" / f"tenant-{tenant_id}.jsonl"
        (record,) = [r for r in (json.loads(line) for line in log.read_text().splitlines() if line) if r.get("body") == caption]
        assert record["media_sha256"] == hashlib.sha256(pdf).hexdigest() and record["media_name"] == "lease-contract.pdf"
        assert (root / "received-media" / f"tenant-{tenant_id}" / record["media_sha256"]).read_bytes() == pdf
        screenshot(agent, "case-file-sent")
    finally:
        context.close()
        # The app is shared with the other browser tests: leave the line unlinked, as found.
        from services import whatsapp
        from services.models import Principal, Role, User

        with services_db.session_scope() as session:
            admin = session.execute(sa.select(User).where(User.tenant_id == tenant_id, User.role == Role.ADMIN)).scalars().first()
            whatsapp.disconnect(session=session, tenant_id=tenant_id,
                                actor=Principal(user_id=admin.id, tenant_id=tenant_id, role=Role.ADMIN))
        from services.models import WhatsappSession, WhatsappStatus

        def unlinked() -> bool:
            with services_db.session_scope() as session:
                status = session.execute(sa.select(WhatsappSession.status).where(WhatsappSession.tenant_id == tenant_id)).scalar_one_or_none()
            return status in (None, WhatsappStatus.DISCONNECTED)

        deadline = time.monotonic() + 20
        while not unlinked() and time.monotonic() < deadline:
            time.sleep(0.2)
