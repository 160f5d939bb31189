"""Managing the firm's users through a real browser: links, roles, disabling, who may open the page."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.conftest import LOGINS, login, screenshot

pytestmark = pytest.mark.e2e


def _row(page, email: str):
    return page.locator(f"[data-testid=users-row][data-email='{email}']")


def _add_user(page, name: str, email: str, password: str | None = None) -> None:
    page.get_by_test_id("new-user-name").fill(name)
    page.get_by_test_id("new-user-email").fill(email)
    if password is not None:
        page.get_by_test_id("mode-password").click()
        page.get_by_test_id("new-user-password").fill(password)
    else:
        page.get_by_test_id("mode-link").click()
    page.get_by_test_id("new-user-submit").click()
    expect(_row(page, email)).to_be_visible()


def _sign_in(page, email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_a_user_added_with_a_link_sets_a_password_and_signs_in(page, browser, app):
    login(page, "OWNER")
    page.get_by_test_id("nav-nav_users").click()
    expect(page.get_by_test_id("users-table")).to_be_visible()
    _add_user(page, "Noura Link", "noura.link@demo.watheeq.local")
    link = page.get_by_test_id("password-link")
    expect(link).to_contain_text("/set-password?token=wtqs_")
    url = link.inner_text().strip()
    screenshot(page, "users-link")
    page.get_by_test_id("password-link-close").click()
    expect(page.get_by_test_id("password-link")).to_have_count(0)
    expect(_row(page, "noura.link@demo.watheeq.local")).to_contain_text("Agent")

    newcomer = browser.new_context(base_url=app.base_url).new_page()
    newcomer.set_default_timeout(20_000)
    newcomer.goto(url)
    expect(newcomer.get_by_test_id("set-password-email")).to_contain_text("noura.link@demo.watheeq.local")
    newcomer.get_by_test_id("set-password-password").fill("noura's own passphrase")
    newcomer.get_by_test_id("set-password-confirm").fill("noura's own passphrase")
    newcomer.get_by_test_id("set-password-submit").click()
    expect(newcomer.get_by_test_id("set-password-done")).to_be_visible()
    # The link works once.
    newcomer.goto(url)
    expect(newcomer.get_by_test_id("link-invalid")).to_be_visible()
    _sign_in(newcomer, "noura.link@demo.watheeq.local", "noura's own passphrase")
    expect(newcomer.get_by_test_id("user-role")).to_have_text("Agent")
    newcomer.context.close()


def test_admin_changes_a_role(page, services_db):
    from services.models import User

    login(page, "ADMIN")
    page.goto("/users")
    _add_user(page, "Rami Role", "rami.role@demo.watheeq.local", password="rami's passphrase")
    row = _row(page, "rami.role@demo.watheeq.local")
    row.get_by_test_id("user-role-select").click()
    # An admin is never offered the owner role.
    expect(page.get_by_role("option", name="Owner")).to_have_count(0)
    page.get_by_role("option", name="Manager").click()
    expect(row.get_by_test_id("user-role-select")).to_have_text("Manager")
    screenshot(page, "users")
    with services_db.session_scope() as session:
        role = session.execute(sa.select(User.role).where(User.email == "rami.role@demo.watheeq.local")).scalar_one()
    assert role.value == "MANAGER"
    # A refused addition says why next to the field and adds nobody.
    page.get_by_test_id("new-user-email").fill(LOGINS["AGENT"].upper())
    page.get_by_test_id("new-user-submit").click()
    expect(page.get_by_test_id("field-error")).to_have_text("a user with this email already exists")
    expect(page.get_by_test_id("users-row").filter(has_text=LOGINS["AGENT"])).to_have_count(1)


def test_disabling_a_user_ends_their_api_token_and_sign_in_says_disabled(page, app):
    login(page, "ADMIN")
    page.goto("/users")
    _add_user(page, "Dana Disabled", "dana.off@demo.watheeq.local", password="dana's passphrase")
    api = httpx.Client(base_url=app.backend_url, timeout=20)
    token = api.post("/api/v1/auth/token", json={"email": "dana.off@demo.watheeq.local", "password": "dana's passphrase"}).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/api/v1/auth/me", headers=bearer).status_code == 200

    row = _row(page, "dana.off@demo.watheeq.local")
    row.get_by_test_id("user-disable").click()
    page.get_by_test_id("confirm-disable").click()
    expect(row.get_by_test_id("user-status")).to_have_text("Disabled")
    assert api.get("/api/v1/auth/me", headers=bearer).status_code == 401
    api.close()

    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    _sign_in(page, "dana.off@demo.watheeq.local", "dana's passphrase")
    expect(page.get_by_test_id("login-error")).to_have_text("This account is disabled")


def test_an_admin_is_offered_no_change_to_an_owner_nor_to_themself(page):
    login(page, "ADMIN")
    page.goto("/users")
    for email in (LOGINS["OWNER"], LOGINS["ADMIN"]):
        row = _row(page, email)
        expect(row.get_by_test_id("user-role-text")).to_be_visible()
        expect(row.get_by_test_id("user-role-select")).to_have_count(0)
        expect(row.get_by_test_id("user-disable")).to_have_count(0)
        expect(row.get_by_test_id("user-reset")).to_have_count(0)
    expect(_row(page, LOGINS["OWNER"]).get_by_test_id("user-role-text")).to_have_text("Owner")


@pytest.mark.parametrize("role", ["MANAGER", "AGENT"])
def test_managers_and_agents_cannot_open_the_users_page(page, role):
    login(page, role)
    expect(page.get_by_test_id("nav-nav_account")).to_be_visible()
    expect(page.get_by_test_id("nav-nav_users")).to_have_count(0)
    page.goto("/users")
    expect(page.get_by_test_id("not-allowed")).to_be_visible()
    expect(page.get_by_test_id("users-table")).to_have_count(0)
    expect(page.get_by_text(LOGINS["OWNER"])).to_have_count(0)


def test_a_user_changes_their_password_and_signs_out_everywhere(page, browser, app, services_db):
    from services import accounts
    from services.models import User

    with services_db.session_scope() as session:
        tenant_id = session.execute(sa.select(User.tenant_id).where(User.email == LOGINS["OWNER"])).scalar_one()
        accounts.create_user(session=session, tenant_id=tenant_id, email="sami.self@demo.watheeq.local",
                             password="sami's first passphrase", role="AGENT", full_name="Sami Self")
    other = browser.new_context(base_url=app.base_url).new_page()
    other.set_default_timeout(20_000)
    _sign_in(other, "sami.self@demo.watheeq.local", "sami's first passphrase")
    expect(other.get_by_test_id("page-title")).to_be_visible()

    _sign_in(page, "sami.self@demo.watheeq.local", "sami's first passphrase")
    page.get_by_test_id("nav-nav_account").click()
    page.get_by_test_id("account-current-password").fill("not my passphrase")
    page.get_by_test_id("account-new-password").fill("sami's second passphrase")
    page.get_by_test_id("account-confirm-password").fill("sami's second passphrase")
    page.get_by_test_id("account-change-password").click()
    expect(page.get_by_test_id("field-error")).to_have_text("the current password is not right")
    page.get_by_test_id("account-current-password").fill("sami's first passphrase")
    page.get_by_test_id("account-change-password").click()
    expect(page.get_by_text("Password changed")).to_be_visible()
    # This tab stays signed in; the other one's session has ended.
    page.reload()
    expect(page.get_by_test_id("page-title")).to_be_visible()
    other.goto("/calls")
    expect(other).to_have_url(re.compile(r"/login"))
    other.context.close()

    page.get_by_test_id("account-sign-out-everywhere").click()
    expect(page).to_have_url(re.compile(r"/login"))
    _sign_in(page, "sami.self@demo.watheeq.local", "sami's second passphrase")
    expect(page.get_by_test_id("page-title")).to_be_visible()


def test_a_lock_out_earned_over_the_api_refuses_the_right_password_in_the_browser(page, app, services_db):
    from services import accounts
    from services.models import User

    email = "lina.locked@demo.watheeq.local"
    with services_db.session_scope() as session:
        tenant_id = session.execute(sa.select(User.tenant_id).where(User.email == LOGINS["OWNER"])).scalar_one()
        accounts.create_user(session=session, tenant_id=tenant_id, email=email, password="lina's passphrase", role="AGENT")
    # From another loopback address, so this address's own count is not what locks the browser out.
    api = httpx.Client(base_url=app.backend_url, timeout=30, transport=httpx.HTTPTransport(local_address="127.0.0.2"))
    wrong = {"email": email, "password": "not lina's passphrase"}
    start = threading.Barrier(40)

    def attempt(_: int) -> int:
        start.wait()
        return api.post("/api/v1/auth/token", json=wrong).status_code

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(attempt, range(40)))
    assert codes.count(401) <= 6 and codes.count(429) >= 34 and set(codes) == {401, 429}
    # Each allowed failure doubles the wait; go on until the wait outlasts a browser sign-in.
    while True:
        r = api.post("/api/v1/auth/token", json=wrong)
        if r.status_code == 429 and int(r.headers["retry-after"]) >= 8:
            break
        if r.status_code == 429:
            time.sleep(int(r.headers["retry-after"]))
    api.close()
    _sign_in(page, email, "lina's passphrase")
    expect(page.get_by_test_id("login-error")).to_contain_text(re.compile(r"Too many attempts, wait \d+ s"))
    expect(page).to_have_url(re.compile(r"/login"))
