"""What each role sees and does in the dashboard, through a real browser."""

from __future__ import annotations

import io
import re
import time

import pandas as pd
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_PASSWORD, LOGINS, login, screenshot

pytestmark = pytest.mark.e2e


def _nav(page, key: str):
    return page.get_by_test_id(f"nav-{key}")


@pytest.mark.parametrize("role", ["OWNER", "ADMIN"])
def test_admins_open_every_page(page, role):
    login(page, role)
    expect(page.get_by_test_id("user-role")).to_have_text(role.capitalize())
    expect(page.get_by_test_id("stat-total")).to_be_visible()
    for key in ("nav_dashboard", "nav_calls", "nav_clients", "nav_extensions"):
        expect(_nav(page, key)).to_be_visible()
    page.goto("/extensions")
    expect(page.get_by_test_id("extensions-table")).to_be_visible()
    expect(page.get_by_test_id("user-row")).to_have_count(6)
    expect(page.get_by_test_id("not-allowed")).to_have_count(0)


@pytest.mark.parametrize("role", ["MANAGER", "AGENT"])
def test_non_admins_get_not_allowed_on_the_extensions_url(page, role):
    login(page, role)
    expect(_nav(page, "nav_calls")).to_be_visible()
    expect(_nav(page, "nav_extensions")).to_have_count(0)
    page.goto("/extensions")
    expect(page.get_by_test_id("not-allowed")).to_be_visible()
    expect(page.get_by_test_id("extensions-table")).to_have_count(0)
    # Nobody's email leaks onto the refused page.
    expect(page.get_by_text(LOGINS["OWNER"])).to_have_count(0)
    screenshot(page, f"not-allowed-{role.lower()}")


def test_agent_sees_only_their_own_calls(page, services_db):
    from services.models import Call, User

    with services_db.session_scope() as session:
        agent_id = session.execute(sa.select(User.id).where(User.email == LOGINS["AGENT"])).scalar_one()
        own = session.execute(sa.select(sa.func.count()).select_from(Call).where(Call.agent_user_id == agent_id)).scalar_one()
    login(page, "AGENT")
    expect(page.get_by_text("My calls today")).to_be_visible()
    page.goto("/calls")
    expect(page.get_by_test_id("calls-total")).to_have_text(f"{own:,} calls")
    expect(page.get_by_test_id("filter-agent")).to_have_count(0)
    expect(page.get_by_test_id("export-csv")).to_have_count(0)
    screenshot(page, "calls-agent")


def test_manager_dashboard_shows_the_firm(page):
    login(page, "MANAGER")
    expect(page.get_by_text("The firm's calls today")).to_be_visible()
    expect(page.get_by_test_id("agents-table")).to_be_visible()
    # Each chart drawn with its data: 24 hours of stacked bars (answered, missed), a line and
    # a marker per day for each series.
    hour = page.locator("[data-testid=chart-hour] svg.wq-chart")
    expect(hour).to_be_visible()
    expect(hour).to_have_attribute("data-points", "24")
    expect(hour.locator("rect[data-y]")).to_have_count(48)
    trend = page.locator("[data-testid=chart-trend] svg.wq-chart")
    expect(trend).to_be_visible()
    days = int(trend.get_attribute("data-points"))
    assert days >= 1
    expect(trend.locator("path")).to_have_count(2)
    expect(trend.locator("circle[data-y]")).to_have_count(2 * days)
    # The hover names the hour and both counts.
    hour.locator("rect:not([data-y])").nth(10).hover()
    expect(page.get_by_test_id("chart-tooltip")).to_contain_text("10")
    # Each chart's width, as its box was laid out, is kept for the next load (which then draws
    # the chart with the page instead of after measuring it).
    for chart, key in ((hour, "figure-hour"), (trend, "figure-trend")):
        width = chart.get_attribute("width")
        assert int(width) > 100
        assert page.evaluate(f"() => localStorage.getItem('watheeq.chart.width.{key}')") == width
    expect(page.get_by_test_id("whatsapp-status")).to_be_visible()
    screenshot(page, "dashboard")


def test_a_new_tab_gets_the_session_and_the_dashboard_in_one_update(page):
    """A new tab learns it is signed in and gets the page's data in the same update, so the
    browser draws the signed-in dashboard once, with its figures (not an empty page first:
    two renders of the whole page, ~90 ms of main thread on the bench machine)."""
    login(page, "MANAGER")
    expect(page.get_by_test_id("agents-table")).to_be_visible()
    tab = page.context.new_page()
    frames: list[str] = []
    tab.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(p if isinstance(p, str) else "")))
    tab.goto("/")
    expect(tab.get_by_test_id("agents-table")).to_be_visible()
    signed_in = [f for f in frames if '"signed_in_rx_state_":true' in f]
    assert signed_in, frames
    # The first update that signs the tab in carries the dashboard's state and the header's
    # WhatsApp line with it.
    assert "dashboard____dashboard_state" in signed_in[0], signed_in[0][:300]
    assert "whatsapp_line____whatsapp_line_state" in signed_in[0], signed_in[0][:300]
    assert not any("dashboard____dashboard_state" in f for f in frames[: frames.index(signed_in[0])])
    tab.close()


def test_wrong_password_is_refused_with_a_clear_message(page):
    page.goto("/login")
    page.get_by_test_id("login-email").fill(LOGINS["MANAGER"])
    page.get_by_test_id("login-password").fill("not-the-password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("login-error")).to_have_text("Wrong email or password")
    expect(page).to_have_url(re.compile(r"/login"))
    screenshot(page, "login-refused")


def test_session_survives_reload_and_ends_on_logout(page):
    login(page, "MANAGER")
    page.reload()
    expect(page.get_by_test_id("user-name")).to_be_visible()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto("/calls")
    expect(page).to_have_url(re.compile(r"/login\?next=/calls"))
    expect(page.get_by_test_id("calls-table")).to_have_count(0)


def test_admin_assigns_an_extension_and_a_taken_number_is_refused(page):
    login(page, "ADMIN")
    page.goto("/extensions")
    page.get_by_test_id("assign-user").click()
    page.get_by_role("option", name=re.compile(re.escape(LOGINS["MANAGER"]))).click()
    page.get_by_test_id("assign-extension").fill("1450")
    page.get_by_test_id("assign-display-name").fill("Manager desk")
    page.get_by_test_id("assign-password").fill("sip-secret-1450")
    page.get_by_test_id("assign-submit").click()
    row = page.get_by_test_id("user-row").filter(has_text=LOGINS["MANAGER"])
    expect(row.get_by_test_id("extension-number")).to_have_text("1450")
    expect(page.get_by_test_id("assign-password")).to_have_value("")
    screenshot(page, "extensions")

    page.get_by_test_id("assign-user").click()
    page.get_by_role("option", name=re.compile(re.escape(LOGINS["OWNER"]))).click()
    page.get_by_test_id("assign-extension").fill("1450")
    page.get_by_test_id("assign-password").fill("sip-secret-owner")
    page.get_by_test_id("assign-submit").click()
    expect(page.get_by_test_id("field-error")).to_contain_text("already assigned")
    owner_row = page.get_by_test_id("user-row").filter(has_text=LOGINS["OWNER"])
    expect(owner_row.get_by_test_id("extension-number")).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("user-row").filter(has_text=LOGINS["MANAGER"]).get_by_test_id("extension-number")).to_have_text("1450")


def test_an_arabic_admin_reads_why_a_taken_extension_is_refused(page, services_db):
    from services.models import SipExtension, User

    with services_db.session_scope() as session:
        taken = session.execute(
            sa.select(SipExtension.extension).join(User, User.id == SipExtension.user_id).where(User.email == LOGINS["AGENT"])
        ).scalar_one()
    login(page, "ADMIN")
    page.get_by_test_id("toggle-language").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.goto("/extensions")
    page.get_by_test_id("assign-user").click()
    page.get_by_role("option", name=re.compile(re.escape(LOGINS["OWNER"]))).click()
    page.get_by_test_id("assign-extension").fill(taken)
    page.get_by_test_id("assign-password").fill("sip-secret-owner")
    page.get_by_test_id("assign-submit").click()
    expect(page.get_by_test_id("field-error")).to_have_text(f"التحويلة {taken} مسندة لمستخدم آخر بالفعل")
    screenshot(page, "extensions-arabic-refusal")


def test_history_filter_note_and_case_persist(page, services_db):
    from services.models import Call, Case

    with services_db.session_scope() as session:
        number = session.execute(
            sa.select(Call.remote_number)
            .join(Case, Case.client_id == Call.client_id)
            .where(Call.case_id.is_(None))
            .order_by(Call.started_at.desc())
            .limit(1)
        ).scalar_one()
    login(page, "MANAGER")
    page.goto("/calls")
    expect(page.get_by_test_id("call-row").first).to_be_visible()
    page.get_by_test_id("filter-number").fill(number)
    rows = page.get_by_test_id("call-row")
    expect(rows.first).to_contain_text(number)
    rows.first.click()
    panel = page.get_by_test_id("call-panel")
    expect(panel).to_be_visible()
    note = f"Client asked for the hearing date {time.time():.0f}"
    page.get_by_test_id("note-input").fill(note)
    page.get_by_test_id("note-add").click()
    expect(page.get_by_test_id("note-entry").first).to_contain_text(note)
    select = page.get_by_test_id("case-select")
    case_name = select.locator("option").nth(1).inner_text()
    select.select_option(index=1)
    page.get_by_test_id("case-link").click()
    expect(page.get_by_test_id("panel-case")).to_have_text(re.compile(re.escape(case_name.split(" (")[0])))
    screenshot(page, "call-panel")

    page.reload()
    page.get_by_test_id("filter-number").fill(number)
    page.get_by_test_id("call-row").first.click()
    expect(page.get_by_test_id("note-entry").filter(has_text=note)).to_have_count(1)
    expect(page.get_by_test_id("panel-case")).to_have_text(re.compile(re.escape(case_name.split(" (")[0])))
    with services_db.session_scope() as session:
        noted = session.execute(
            sa.select(Call.id, Call.case_id).where(Call.remote_number == number, Call.notes.contains(note))
        ).all()
    assert len(noted) == 1 and noted[0].case_id is not None


def test_a_number_search_in_more_than_a_thousand_calls_says_more_than_and_pages_past_it(page, services_db):
    from datetime import datetime, timedelta, timezone

    from services.call_center import get_call_history
    from services.models import Call, CallFilters, CallStatus, Principal, Role, User

    # 1,060 calls two months back (out of the dashboard's periods), each from its own number
    # "+9665888xxxxx"; taken away again at the end.
    base = datetime.now(timezone.utc) - timedelta(days=60)
    numbers = [f"+9665888{i:05d}" for i in range(1060)]
    with services_db.session_scope() as session:
        manager = session.execute(sa.select(User).where(User.email == LOGINS["MANAGER"])).scalar_one()
        actor = Principal(user_id=manager.id, tenant_id=manager.tenant_id, role=Role(manager.role))
        session.execute(sa.insert(Call), [
            {"tenant_id": actor.tenant_id, "direction": "INBOUND", "status": CallStatus.MISSED, "remote_number": n,
             "remote_e164": n, "started_at": base - timedelta(minutes=i), "updated_at": base, "notes": ""}
            for i, n in enumerate(numbers)
        ])
    try:
        login(page, "MANAGER")
        page.goto("/calls")
        expect(page.get_by_test_id("call-row").first).to_be_visible()
        page.get_by_test_id("filter-number").fill("9665888")
        expect(page.get_by_test_id("calls-total")).to_have_text("More than 1,000 calls")
        expect(page.get_by_test_id("page-of")).to_have_text("Page 1 of 20+")
        page.get_by_test_id("page-last").click()
        expect(page.get_by_test_id("page-of")).to_have_text("Page 20 of 21+")
        page.get_by_test_id("page-next").click()
        # Page 21 (matches 1,001 to 1,050) is the service's, past the bound.
        with services_db.session_scope() as session:
            expected = get_call_history(session=session, tenant_id=actor.tenant_id, actor=actor,
                                        filters=CallFilters(number="9665888"), page=21, page_size=50)
        assert expected.count_is_lower_bound and len(expected.data) == 50
        expect(page.get_by_test_id("page-of")).to_have_text("Page 21 of 22+")
        rows = page.get_by_test_id("call-row")
        expect(rows).to_have_count(50)
        expect(rows.first).to_contain_text(expected.data[0].remote_number)
        expect(rows.last).to_contain_text(expected.data[-1].remote_number)
        screenshot(page, "calls-number-search-more-than")
    finally:
        with services_db.session_scope() as session:
            session.execute(sa.delete(Call).where(Call.tenant_id == actor.tenant_id, Call.remote_e164.in_(numbers)))


def test_time_header_toggles_oldest_first_and_back(page):
    login(page, "MANAGER")
    page.goto("/calls")
    first_start = page.get_by_test_id("call-row").first.locator("td").first
    expect(first_start).to_be_visible()
    newest = first_start.inner_text()
    toggle = page.get_by_test_id("sort-started")
    toggle.click()
    expect(toggle).to_have_attribute("data-order", "oldest")
    expect(page.get_by_test_id("calls-order")).to_have_text("Oldest first")
    expect(first_start).not_to_have_text(newest)
    # The seeded calls span days: the oldest row starts before the newest ("YYYY-MM-DD HH:MM").
    assert first_start.inner_text() < newest
    toggle.click()
    expect(toggle).to_have_attribute("data-order", "newest")
    expect(first_start).to_have_text(newest)


def test_bad_number_search_is_explained_next_to_the_field(page):
    login(page, "MANAGER")
    page.goto("/calls")
    page.get_by_test_id("filter-number").fill("abc")
    expect(page.get_by_test_id("field-error")).to_contain_text("digits")


def test_export_csv_has_the_filtered_rows(page):
    login(page, "MANAGER")
    page.goto("/calls")
    page.get_by_test_id("filter-status").click()
    page.get_by_role("option", name="Missed").click()
    total_text = page.get_by_test_id("calls-total")
    expect(total_text).not_to_have_text("3,000 calls")
    expect(page.get_by_test_id("call-row").first).to_contain_text("Missed")
    expected = int(total_text.inner_text().split()[0].replace(",", ""))
    with page.expect_download(timeout=60_000) as info:
        page.get_by_test_id("export-csv").click()
    frame = pd.read_csv(io.BytesIO(open(info.value.path(), "rb").read()), encoding="utf-8-sig")
    assert len(frame) == expected
    assert set(frame["status"]) == {"MISSED"}
    assert {"started_at", "remote_number", "agent", "client"} <= set(frame.columns)
    screenshot(page, "calls")


def test_clients_list_and_timeline(page):
    login(page, "MANAGER")
    page.goto("/clients")
    expect(page.get_by_test_id("client-row").first).to_be_visible()
    screenshot(page, "clients")
    page.get_by_test_id("client-row").first.get_by_role("link").click()
    expect(page.get_by_test_id("client-name")).to_be_visible()
    expect(page.get_by_test_id("timeline")).to_be_visible()
    screenshot(page, "client")


def test_arabic_switch_turns_the_page_right_to_left(page):
    login(page, "OWNER")
    page.get_by_test_id("toggle-language").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_test_id("page-title")).to_have_text("لوحة المتابعة")
    page.reload()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_test_id("nav-nav_calls")).to_have_text("سجل المكالمات")
    screenshot(page, "dashboard-arabic")
    page.get_by_test_id("toggle-language").click()
    expect(page.locator("html")).to_have_attribute("dir", "ltr")


def test_repeated_failures_are_slowed_down(page):
    # Last: it throttles this browser's source address for a few seconds.
    page.goto("/login")
    error = page.get_by_test_id("login-error")
    for _ in range(10):
        page.get_by_test_id("login-email").fill(LOGINS["AGENT"])
        page.get_by_test_id("login-password").fill("wrong-password")
        page.get_by_test_id("login-submit").click()
        expect(error).to_be_visible()
        expect(page.get_by_test_id("login-submit")).to_be_enabled()
        if "Too many" in error.inner_text():
            break
    expect(page.get_by_test_id("login-error")).to_contain_text(re.compile(r"Too many attempts, wait \d+ s"))
    time.sleep(5)
    page.get_by_test_id("login-password").fill(DEMO_PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("page-title")).to_be_visible()
