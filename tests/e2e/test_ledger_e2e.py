"""The call ledger in a real browser: a PBX call nobody saw on the dashboard's "missed calls
to call back" with the client's name, a ring-group call's legs in the history's side panel
(who rang, who answered, the transfer, who talked how long), and the record feed's health
line on the PBX settings page."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from services.models import Client, PbxFeed, PbxSettings, SipExtension, Tenant, User, utcnow
from services.pbx import feed
from services.pbx.ledger import ingest
from services.pbx.records import LegDisposition
from tests.e2e.conftest import login, screenshot
from tests.ledger_support import leg

pytestmark = pytest.mark.e2e


def _demo(session):
    tenant = session.execute(sa.select(Tenant).order_by(Tenant.id)).scalars().first()
    exts = session.execute(
        sa.select(SipExtension.extension, User.full_name).join(User, User.id == SipExtension.user_id)
        .where(SipExtension.tenant_id == tenant.id).order_by(SipExtension.extension)
    ).all()
    return tenant, exts


def test_a_pbx_call_nobody_saw_is_on_the_dashboards_missed_calls_with_the_client(page, services_db):
    with services_db.session_scope() as session:
        tenant, exts = _demo(session)
        client = session.execute(sa.select(Client).where(Client.tenant_id == tenant.id, Client.phone_e164.is_not(None))
                                 .order_by(Client.id.desc())).scalars().first()
        t0 = utcnow() - timedelta(seconds=30)
        ingest(session=session, tenant_id=tenant.id, records=[
            leg(f"e2e-missed-{random.getrandbits(32)}", extension=e, remote=client.phone_e164, end=12,
                disposition=LegDisposition.CANCELED, t0=t0) for e, _ in exts[:2]
        ])
        name = client.name
    login(page, "MANAGER")
    expect(page.get_by_test_id("missed-call").first).to_contain_text(name)
    screenshot(page, "ledger-missed-on-dashboard")


def test_the_side_panel_shows_a_transferred_ring_group_calls_legs(page, services_db):
    number = f"+96655{random.randrange(10**7):07d}"
    with services_db.session_scope() as session:
        tenant, exts = _demo(session)
        (e1, n1), (e2, n2), (e3, n3) = exts[:3]
        linked = f"e2e-rg-{random.getrandbits(32)}"
        t0 = utcnow() - timedelta(minutes=5)
        ingest(session=session, tenant_id=tenant.id, records=[
            leg(linked, extension=e1, remote=number, answer=4, end=64, t0=t0),
            leg(linked, extension=e2, remote=number, end=4, disposition=LegDisposition.CANCELED, t0=t0),
            leg(linked, extension=e3, remote=number, start=64, answer=66, end=96, transferred_by=e1,
                disposition=LegDisposition.ANSWERED, t0=t0),
        ])
    login(page, "MANAGER")
    page.goto("/calls")
    page.get_by_test_id("filter-number").fill(number)
    rows = page.get_by_test_id("call-row")
    expect(rows).to_have_count(1)
    rows.first.click()
    legs = page.get_by_test_id("call-leg")
    expect(legs).to_have_count(3)
    expect(legs.nth(0)).to_contain_text(n1)
    expect(legs.nth(0)).to_contain_text("talked 1:00")
    expect(legs.nth(1)).to_contain_text(n2)
    expect(legs.nth(1)).to_contain_text("not answered")
    expect(legs.nth(2)).to_contain_text(n3)
    expect(legs.nth(2)).to_contain_text(f"transferred by {e1}")
    expect(legs.nth(2)).to_contain_text("talked 0:30")
    kinds = page.get_by_test_id("call-leg-kind")
    for i, kind in enumerate(("answered", "rang", "transfer")):
        expect(kinds.nth(i)).to_have_text(kind)
    screenshot(page, "ledger-call-legs")


def test_the_pbx_settings_page_shows_the_feeds_health(page, services_db):
    with services_db.session_scope() as session:
        tenant, _ = _demo(session)
        settings = session.execute(sa.select(PbxSettings).where(PbxSettings.tenant_id == tenant.id)).scalar_one()
        settings.cdr_source = "lab"
        session.flush()
        # Held by this test (a long lease), so the app's own reconciler leaves the firm alone:
        # the demo firm's feed is the app's reconciler's (its records come from the lab), so its
        # lease is made to lapse first (the reconciler's next write is fenced off by the epoch).
        session.execute(sa.update(PbxFeed).where(PbxFeed.tenant_id == tenant.id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        [lease] = [x for x in feed.claim_feeds(session=session, worker_id="e2e", lease_seconds=3600) if x.tenant_id == tenant.id]
        feed.commit_batch(session=session, tenant_id=tenant.id, worker_id="e2e", epoch=lease.epoch,
                          records=[leg(f"e2e-feed-{random.getrandbits(32)}", end=5, t0=utcnow() - timedelta(seconds=20))],
                          source_kind="lab", live=True)
        feed.record_state(session=session, tenant_id=tenant.id, worker_id="e2e", epoch=lease.epoch, connected=False,
                          error_code="unreachable", error="The PBX did not answer.")
    try:
        login(page, "ADMIN")
        page.goto("/extensions")
        line = page.get_by_test_id("cdr-feed-health")
        expect(page.get_by_test_id("cdr-feed-state")).to_have_text("Not connected")
        expect(page.get_by_test_id("cdr-records-today")).to_have_text("records today: 1")
        expect(page.get_by_test_id("cdr-feed-error")).to_have_text("Not reachable. The PBX did not answer.")
        expect(line).to_contain_text("last record")
        with services_db.session_scope() as session:
            feed.record_state(session=session, tenant_id=tenant.id, worker_id="e2e", epoch=lease.epoch, connected=True)
        page.get_by_test_id("cdr-feed-refresh").click()
        expect(page.get_by_test_id("cdr-feed-state")).to_have_text("Connected")
        expect(page.get_by_test_id("cdr-feed-error")).to_have_count(0)
        screenshot(page, "ledger-feed-health")
    finally:
        with services_db.session_scope() as session:
            session.execute(sa.update(PbxSettings).where(PbxSettings.tenant_id == tenant.id).values(cdr_source=""))
            feed.release_leases(session=session, worker_id="e2e")
