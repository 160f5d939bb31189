"""Arabic is a right-to-left page all the way down: tables, selects, date fields, the words.

Also what a user sees at once on any page: the sidebar runs the page's full height, and
starting the app leaves the checkout as git has it.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import LOGINS, SCREENSHOTS, login, screenshot, tracked_changes

pytestmark = pytest.mark.e2e

# (route, table) for every page that shows a table to an owner.
TABLES = [
    ("/", "agents-table"),
    ("/calls", "calls-table"),
    ("/clients", "clients-table"),
    ("/extensions", "extensions-table"),
]

GEOMETRY = """
(root) => {
  const cells = root.querySelectorAll('thead th');
  const box = root.getBoundingClientRect();
  const first = cells[0].getBoundingClientRect();
  const last = cells[cells.length - 1].getBoundingClientRect();
  const scroller = root.querySelector('[dir]');
  return {rootLeft: box.left, rootRight: box.right, firstLeft: first.left, firstRight: first.right,
          lastLeft: last.left, dir: scroller ? scroller.getAttribute('dir') : null};
}
"""

# Words that are the same in both languages: names of formats, protocols and products, the
# language switch (which names English in English) and the Alt key of the toasts' shortcut.
TECHNICAL_WORDS = {"English", "alt", "CSV", "SIP", "WSS", "HTTPS", "UCM", "Grandstream", "STUN", "TURN", "TURNS", "ICE", "URL", "PBX", "IP", "UTF", "WebSocket", "QR", "DID", "TLS", "ws", "wss"}
# The bulk-assignment hint names the CSV file's columns as they are written in the file.
CSV_COLUMNS = {"email", "extension", "display_name", "password"}
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z_'’-]*[A-Za-z]")

VISIBLE_TEXT = """
() => {
  const parts = [document.body.innerText];
  for (const el of document.querySelectorAll('[placeholder], [aria-label], [title], img[alt]')) {
    // Hidden helpers (a zero-size element's tooltip, an aria-hidden input) reach nobody.
    const box = el.getBoundingClientRect();
    if (el.closest('[aria-hidden=true]') || box.width === 0 || box.height === 0) continue;
    for (const name of ['placeholder', 'aria-label', 'title', 'alt']) {
      const value = el.getAttribute(name);
      if (value) parts.push(value);
    }
  }
  return parts.join('\\n');
}
"""


def _to_arabic(page) -> None:
    page.get_by_test_id("toggle-language").click()
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    expect(page.get_by_test_id("page-title")).to_have_text(re.compile(r"[\u0600-\u06FF]"))


def _table_geometry(page, test_id: str) -> dict:
    table = page.get_by_test_id(test_id)
    expect(table.locator("tbody tr").first).to_be_visible()
    return table.evaluate(GEOMETRY)


def test_every_table_starts_at_the_right_edge_in_arabic(page):
    login(page, "OWNER")
    _to_arabic(page)
    for route, test_id in TABLES:
        page.goto(route)
        g = _table_geometry(page, test_id)
        assert g["dir"] == "rtl", f"{route}: the table's scroll area is {g['dir']}"
        assert abs(g["firstRight"] - g["rootRight"]) <= 2, f"{route}: the first column is not at the right edge: {g}"
        assert g["firstLeft"] > g["lastLeft"], f"{route}: columns run left to right: {g}"
        screenshot(page, f"rtl-{test_id}")
    # And back: English tables start at the left edge again.
    page.get_by_test_id("toggle-language").click()
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    g = _table_geometry(page, TABLES[-1][1])
    assert g["dir"] == "ltr" and abs(g["firstLeft"] - g["rootLeft"]) <= 2 and g["firstLeft"] < g["lastLeft"]


def _right(box: dict) -> float:
    return box["x"] + box["width"]


def test_an_arabic_select_opens_right_to_left(page):
    login(page, "OWNER")
    _to_arabic(page)
    page.goto("/calls")
    trigger = page.get_by_test_id("filter-status")
    expect(trigger).to_have_attribute("dir", "rtl")
    shown = trigger.locator("span:not([aria-hidden])").last.bounding_box()
    trigger.click()
    listbox = page.get_by_role("listbox")
    expect(listbox).to_be_visible()
    # The menu's own direction, which its keyboard handling and its layout follow.
    expect(listbox).to_have_attribute("dir", "rtl")
    option = page.get_by_role("option", name="الكل").locator("span:not([aria-hidden])").first.bounding_box()
    menu = listbox.bounding_box()
    # The window as it is: a full-page shot resizes it, and that closes the menu.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "rtl-select-open.png"))
    # The words sit against the menu's right edge, and the chosen one opens right over the
    # trigger's words, right edge on right edge.
    assert _right(menu) - _right(option) < option["x"] - menu["x"], (menu, option)
    assert abs(_right(option) - _right(shown)) <= 2, (option, shown)
    page.get_by_role("option", name="فائتة").click()
    expect(trigger).to_contain_text("فائتة")


def _data_strings(services_db) -> list[str]:
    """Everything the seeded firm typed in (names, titles, notes): shown as written, in any language."""
    from services.models import Call, CallNote, Case, Client, SipExtension, Tenant, User, WhatsappMessage

    columns = [
        Tenant.name, User.full_name, User.email, Client.name, Client.email, Case.title, Case.reference,
        Call.notes, Call.hangup_cause, CallNote.body, SipExtension.display_name,
        WhatsappMessage.body, WhatsappMessage.push_name,
    ]
    found: set[str] = set()
    with services_db.session_scope() as session:
        for column in columns:
            found.update(v for v in session.execute(sa.select(column).distinct()).scalars() if v)
    # Longest first, so a name is removed whole before any shorter name inside it.
    return sorted(found, key=len, reverse=True)


def _english_words(page, data: list[str]) -> list[str]:
    text = page.evaluate(VISIBLE_TEXT)
    for value in data:
        text = text.replace(value, " ")
    # Host names, addresses and URLs in the PBX settings are data too.
    text = re.sub(r"\S+@\S+|\b\w+:[^\s]+|\b[\w-]+(\.[\w-]+)+\b", " ", text)
    return sorted({w for w in LATIN_WORD.findall(text) if w not in TECHNICAL_WORDS | CSV_COLUMNS})


def test_no_english_words_on_any_page_in_arabic(page, services_db):
    from services.models import Case, User

    data = _data_strings(services_db)
    with services_db.session_scope() as session:
        tenant_id = session.execute(sa.select(User.tenant_id).where(User.email == LOGINS["OWNER"])).scalar_one()
        # A client with cases: their states are on the page too.
        client_id = session.execute(
            sa.select(Case.client_id).where(Case.tenant_id == tenant_id).order_by(Case.id).limit(1)
        ).scalar_one()
    login(page, "OWNER")
    _to_arabic(page)
    english: dict[str, list[str]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state("networkidle")
        words = _english_words(page, data)
        # The window's title (tab, task bar, history) is read too.
        words += [f"title: {w}" for w in LATIN_WORD.findall(page.title())]
        if words:
            english[name] = words
        screenshot(page, f"arabic-{name}")

    for route, ready in [
        ("/", "stat-total"),
        ("/calls", "call-row"),
        ("/clients", "client-row"),
        (f"/clients/{client_id}", "timeline"),
        ("/whatsapp", "wa-line"),
        ("/extensions", "user-row"),
        ("/users", "users-row"),
    ]:
        page.goto(route)
        expect(page.get_by_test_id(ready).first).to_be_visible()
        check(route.strip("/").replace("/", "-") or "dashboard")
    page.goto("/calls")
    page.get_by_test_id("call-row").first.click()
    expect(page.get_by_test_id("call-panel")).to_be_visible()
    check("call-panel")
    # The toasts' region (empty until a toast comes) is announced by its name in Arabic too.
    expect(page.locator("section[aria-label^='الإشعارات']")).to_have_count(1)
    assert not english, f"English words on Arabic pages: {english}"


def test_arabic_bulk_import_explains_a_bad_file_in_arabic(page, tmp_path):
    login(page, "OWNER")
    _to_arabic(page)
    page.goto("/extensions")
    # PBX addresses read left to right on an Arabic page: the path shows as "/ws", not "ws/".
    path = page.get_by_test_id("pbx-path")
    expect(path).to_have_value("/ws")
    assert path.evaluate("e => getComputedStyle(e).direction") == "ltr"
    upload = page.get_by_test_id("bulk-upload").locator("input[type=file]")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,number\nSomeone,1999\n")
    upload.set_input_files(str(bad))
    page.get_by_test_id("bulk-import").click()
    error = page.get_by_test_id("field-error")
    expect(error).to_have_text("يجب أن يذكر السطر الأول أسماء الأعمدة: email, extension, display_name, password")
    # A good file with one unknown person: the results table reads right to left too.
    rows = tmp_path / "rows.csv"
    rows.write_text("email,extension,display_name,password\nnobody@example.invalid,1998,Nobody,sip-secret-1998\n")
    upload.set_input_files(str(rows))
    page.get_by_test_id("bulk-import").click()
    result = page.get_by_test_id("bulk-result")
    expect(result).to_contain_text("لا يوجد مستخدم بهذا البريد في المكتب")
    g = result.locator("xpath=ancestor::div[contains(@class,'rt-TableRoot')][1]").evaluate(GEOMETRY)
    assert g["dir"] == "rtl" and abs(g["firstRight"] - g["rootRight"]) <= 2 and g["firstLeft"] > g["lastLeft"], g
    screenshot(page, "arabic-bulk-import")


def test_arabic_date_filters_write_the_day_the_dashboard_way(page):
    login(page, "OWNER")
    _to_arabic(page)
    page.goto("/calls")
    field = page.get_by_test_id("filter-from")
    expect(field).to_have_text("اختر تاريخًا")
    total = page.get_by_test_id("calls-total")
    # The history loads one round trip after the page (the tab's session is checked first).
    expect(page.get_by_test_id("call-row").first).to_be_visible()
    before = total.inner_text()
    # What the calendar writes when a day is picked.
    today = datetime.now(ZoneInfo("Asia/Riyadh")).date().isoformat()
    page.get_by_test_id("filter-from-picker").fill(today)
    expect(field).to_have_text(today)
    expect(total).not_to_have_text(before)
    assert "mm/dd/yyyy" not in page.evaluate(VISIBLE_TEXT).lower()
    screenshot(page, "arabic-date-filter")
    page.get_by_test_id("filter-from-clear").click()
    expect(field).to_have_text("اختر تاريخًا")
    expect(total).to_have_text(before)
    page.goto("/whatsapp")
    expect(page.get_by_test_id("wa-filter-from")).to_have_text("اختر تاريخًا")
    expect(page.get_by_test_id("wa-filter-to")).to_have_attribute("aria-label", "إلى")


def test_the_sidebar_runs_the_full_height_of_a_long_page(page):
    login(page, "OWNER")
    page.goto("/calls")
    expect(page.get_by_test_id("call-row")).to_have_count(50)
    page_height = page.evaluate("document.documentElement.scrollHeight")
    assert page_height > 900 * 1.5, "the call history should be longer than the window"
    sidebar = page.get_by_test_id("sidebar").bounding_box()
    assert sidebar["height"] >= page_height - 1, (sidebar, page_height)
    # Scrolled to the bottom, the navigation is still in view.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    expect(page.get_by_test_id("logout")).to_be_in_viewport()
    screenshot(page, "sidebar-long-page")


def test_starting_the_app_leaves_the_checkout_unchanged(app):
    if app.tracked_before is None:
        pytest.skip("not a git checkout")
    assert tracked_changes() == app.tracked_before
