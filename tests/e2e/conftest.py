"""Browser end-to-end tests: the app started by scripts/run.sh, driven by Debian's Chromium.

One app per test session, on a fresh seeded SQLite database, free ports and the
WhatsApp simulator. Screenshots go to test-output/screenshots/.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import CHROMIUM, CHROMIUM_ARGS, answers, free_port, unavailable

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
START_TIMEOUT_S = 420
DEMO_PASSWORD = "watheeq-demo"
LOGINS = {
    "OWNER": "owner@demo.watheeq.local",
    "ADMIN": "admin@demo.watheeq.local",
    "MANAGER": "manager@demo.watheeq.local",
    "AGENT": "agent@demo.watheeq.local",
}


@pytest.fixture(scope="package", autouse=True)
def chromium_installed() -> None:
    """Before anything starts: the browser these tests drive (a failure on CI, a skip elsewhere)."""
    if not CHROMIUM.exists():
        unavailable(f"Chromium not found at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright Python package is not installed (run scripts/setup.sh)")


def tracked_changes() -> dict[str, str] | None:
    """Tracked files that differ from the last commit, each with a digest of its content.

    None outside a git checkout (nothing to compare with).
    """
    try:
        listing = subprocess.run(
            ["git", "status", "--porcelain", "-z", "--untracked-files=no"],
            cwd=ROOT, capture_output=True, check=True, text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    changed: dict[str, str] = {}
    for entry in filter(None, listing.split("\0")):
        path = ROOT / entry[3:]
        changed[entry[3:]] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else entry[:2]
    return changed


@dataclass
class RunningApp:
    base_url: str
    backend_url: str
    database_url: str
    log: Path
    # What `git status` showed before scripts/run.sh started: starting must not change it.
    tracked_before: dict[str, str] | None = None
    # The Redis the app's workers share (state and live changes); "" for one worker without.
    redis_url: str = ""


@contextlib.contextmanager
def running_app(work: Path, **extra_env: str) -> Iterator[RunningApp]:
    """The app as scripts/run.sh starts it, on a fresh SQLite database in ``work``, free ports
    and the WhatsApp simulator; ``extra_env`` on top (``REDIS_URL`` and ``GRANIAN_WORKERS``
    for several backend workers). Stopped (every child) on exit."""
    frontend, backend = free_port(), free_port()
    database_url = f"sqlite:///{work / 'e2e.db'}"
    env = {
        **os.environ,
        "WATHEEQ_DATABASE_URL": database_url,
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        # The human pace (guardrails) kept short: these tests are not about it.
        "WATHEEQ_WHATSAPP_TYPING_MAX_SECONDS": "0.3",
        "WATHEEQ_WHATSAPP_GAP_MIN_SECONDS": "0",
        "WATHEEQ_WHATSAPP_GAP_MAX_SECONDS": "0.2",
        "WATHEEQ_WHATSAPP_FIRST_CONTACT_GAP_SECONDS": "0.1",
        "WATHEEQ_FRONTEND_PORT": str(frontend),
        "WATHEEQ_BACKEND_PORT": str(backend),
        "WATHEEQ_EXPORT_DIR": str(work / "exports"),
        "WATHEEQ_DATA_DIR": str(work / "data"),
        # These tests run in the host's network, where 5060/8088/8089 may be anyone's;
        # the softphone tests run the dev PBX in a namespace of their own.
        "WATHEEQ_DEV_PBX": "off",
        **extra_env,
    }
    if "REDIS_URL" not in extra_env:
        env.pop("REDIS_URL", None)
    log = work / "run.log"
    tracked_before = tracked_changes()
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    app = RunningApp(f"http://127.0.0.1:{frontend}", f"http://127.0.0.1:{backend}", database_url, log, tracked_before,
                     redis_url=extra_env.get("REDIS_URL", ""))
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (answers(app.base_url + "/login") and answers(app.backend_url + "/ping")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start; see {log}:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield app
    finally:
        # run.sh traps TERM and stops its children (each in its own process group).
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="package")
def app(chromium_installed: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    with running_app(tmp_path_factory.mktemp("e2e")) as running:
        yield running


@pytest.fixture(scope="package")
def browser(chromium_installed: None) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app: RunningApp) -> Iterator:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True, base_url=app.base_url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="package")
def services_db(app: RunningApp):
    """The services, pointed at the app's database (to find fixtures and check persistence).

    What the test writes is announced to the app as any other process's writes are: through
    the deployment's live-update bus (here the SQLite log), so open tabs see it pushed."""
    with services_on(app) as db:
        yield db


@contextlib.contextmanager
def services_on(app: RunningApp) -> Iterator:
    """``services.db`` on ``app``'s database, this process publishing on ``app``'s live bus."""
    from services import db, live_bus

    engine = db.create_db_engine(app.database_url)
    db.configure(engine)
    live_bus.start(listen=False, bus=live_bus.bus_for(redis_url=app.redis_url, engine=engine))
    try:
        yield db
    finally:
        live_bus.stop()
        db.configure(None)
        engine.dispose()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(page, role: str) -> None:
    page.goto("/login")
    page.get_by_test_id("login-email").fill(LOGINS[role])
    page.get_by_test_id("login-password").fill(DEMO_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.get_by_test_id("page-title").wait_for()
