"""The PBX settings page's call-record card in a real browser: an admin points the firm at
its UCM (the UCM emulator on loopback), a wrong API password reads as a visible error after
"Test connection", the right one as connected, and the password is never shown again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from dev.pbx_lab.ucm_emulator import UcmEmulator
from tests.e2e.conftest import login, screenshot

pytestmark = pytest.mark.e2e

API_PASSWORD = "Ucm-api-Secret-42"


@pytest.fixture
def ucm(tmp_path):
    emu = UcmEmulator(tmp_path / "ucm", password=API_PASSWORD)
    emu.start()
    yield emu
    emu.stop()


def test_an_admin_sets_the_ucm_and_a_wrong_api_password_is_a_visible_error(page, ucm, services_db):
    login(page, "ADMIN")
    page.goto("/extensions")
    page.get_by_test_id("cdr-source").click()
    page.get_by_role("option", name="Grandstream UCM (HTTPS API)").click()
    page.get_by_test_id("cdr-api_url").fill(ucm.url)
    page.get_by_test_id("cdr-api_user").fill("cdrapi")
    page.get_by_test_id("cdr-realtime_port").fill("5100")
    page.get_by_test_id("cdr-api_password").fill("not-the-password")
    page.get_by_test_id("cdr-save").click()
    expect(page.get_by_test_id("cdr-password-stored")).to_be_visible()
    expect(page.get_by_test_id("cdr-api_password")).to_have_value("")

    page.get_by_test_id("cdr-test").click()
    result = page.get_by_test_id("cdr-test-result")
    expect(result).to_contain_text("Sign-in refused.")
    expect(result).to_contain_text("wrong account or password")
    screenshot(page, "call-records-wrong-password")

    page.get_by_test_id("cdr-api_password").fill(API_PASSWORD)
    page.get_by_test_id("cdr-save").click()
    expect(page.get_by_test_id("cdr-test-result")).to_have_count(0)
    page.get_by_test_id("cdr-test").click()
    expect(page.get_by_test_id("cdr-test-result")).to_contain_text("Connected to the UCM as cdrapi")
    assert API_PASSWORD not in page.content()

    page.reload()
    expect(page.get_by_test_id("cdr-api_url")).to_have_value(ucm.url)
    expect(page.get_by_test_id("cdr-password-stored")).to_be_visible()
    with services_db.session_scope() as session:
        stored = session.execute(sa.text("SELECT api_password_encrypted FROM pbx_settings "
                                         "WHERE cdr_source = 'ucm'")).scalar_one()
    assert API_PASSWORD not in stored


def test_a_bad_api_url_is_refused_next_to_its_field(page):
    login(page, "OWNER")
    page.goto("/extensions")
    page.get_by_test_id("cdr-source").click()
    page.get_by_role("option", name="Grandstream UCM (HTTPS API)").click()
    page.get_by_test_id("cdr-api_url").fill("http://ucm.example:8089")
    page.get_by_test_id("cdr-api_user").fill("cdrapi")
    page.get_by_test_id("cdr-api_password").fill("whatever-1")
    page.get_by_test_id("cdr-save").click()
    expect(page.get_by_test_id("field-error").filter(has_text="https://host:port")).to_be_visible()
