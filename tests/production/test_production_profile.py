"""The production topology (`make run-prod`, scripts/run_prod.sh) started for real in a network
namespace whose only interface is ``lo``: Caddy on HTTPS 443 (HTTP 80 redirects) with its internal
CA, PostgreSQL (the machine's, a fresh database reached over its Unix socket), Redis started by
the run command, two Reflex workers on one port, two WhatsApp sidecars (simulator gateway) and the
PBX lab behind ``wss://localhost/sip-ws``. Chromium trusts Caddy's CA through a temporary NSS
profile: no certificate error is ignored."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from tests.browser import CHROMIUM, SOFTPHONE_ARGS, on_ci, unavailable
from tests.softphone import e2e_support as e2e

pytestmark = [pytest.mark.e2e, pytest.mark.sip]

ROOT = Path(__file__).resolve().parents[2]
SITE = "https://localhost"
PG_SOCKET_DIRS = ("/var/run/postgresql", "/run/postgresql", "/tmp")


def _admin_url() -> str:
    return os.environ.get("WATHEEQ_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/test"


def _socket_dir() -> str | None:
    return next((d for d in PG_SOCKET_DIRS if Path(d, ".s.PGSQL.5432").exists()), None)


@dataclass
class Prod:
    netns: e2e.LoopbackNetns
    proc: subprocess.Popen
    workdir: Path
    run_dir: Path
    engine: sa.Engine
    tenant_id: int

    @property
    def ca(self) -> Path:
        return self.run_dir / "caddy-data/caddy/pki/authorities/local/root.crt"

    def curl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.netns.cmd(["curl", "-sS", "--max-time", "10", *args]), capture_output=True, text=True)

    def log(self, name: str) -> str:
        path = self.run_dir / name
        return path.read_text(errors="replace") if path.exists() else ""

    def chromium_wrapper(self) -> str:
        path = self.workdir / "chromium-in-netns"
        path.write_text(f'#!/bin/sh\nexec nsenter -t {self.netns.pid} -n -- {CHROMIUM} "$@"\n')
        path.chmod(0o755)
        return str(path)

    def chromium_env(self) -> dict[str, str]:
        """A temporary HOME whose NSS database trusts Caddy's root (what an office PC does once)."""
        home = self.workdir / "chromium-home"
        nssdb = home / ".pki" / "nssdb"
        if not nssdb.exists():
            nssdb.mkdir(parents=True)
            subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True, capture_output=True)
            subprocess.run(["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "watheeq-caddy", "-i", str(self.ca)],
                           check=True, capture_output=True)
        return {**os.environ, "HOME": str(home), "TMPDIR": str(home)}

    def workers(self) -> list[int]:
        """The backend's worker processes (children of the Reflex process serving the port)."""
        out = subprocess.run(["pgrep", "-f", "serve_app.py run --env prod --single-port"], capture_output=True, text=True).stdout
        members = set(self.netns.members())
        pids = [int(p) for p in out.split() if int(p) in members]
        parent_of = {p: int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) for p in pids}
        return sorted(p for p in pids if parent_of[p] in pids)

    def a_remote_number(self) -> str:
        """The number of the firm's newest call (digits only), to filter the history by."""
        from services.models import Call

        with Session(self.engine) as s:
            number = s.execute(sa.select(Call.remote_number).where(Call.tenant_id == self.tenant_id)
                               .order_by(Call.started_at.desc()).limit(1)).scalar_one()
        return re.sub(r"\D", "", number)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _missing() -> str | None:
    for tool in ("caddy", "redis-server", "certutil", "curl", "unshare", "nsenter"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"{tool} is not installed (scripts/system_deps.sh installs it)"
    return e2e.skip_reason()


@pytest.fixture(scope="module")
def prod(tmp_path_factory) -> Iterator[Prod]:
    reason = _missing()
    if reason:
        unavailable(f"the production profile cannot run: {reason}")
    socket_dir = _socket_dir()
    admin = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"watheeq_prod_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        unavailable(f"no PostgreSQL to run the production profile on ({type(exc).__name__})")
    if socket_dir is None:
        unavailable("PostgreSQL's Unix socket (reachable from a network namespace) was not found")
    host_url = admin.url.set(database=name).render_as_string(hide_password=False)
    ns_url = f"postgresql://{admin.url.username}@/{name}?host={socket_dir}"
    # Kept after the run (logs of every part) where CI keeps its artifacts.
    workdir = ROOT / "test-output" / "production"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    run_dir = workdir / "run"
    from services import config as settings

    key = settings.get("WATHEEQ_SECRET_KEY")
    base_env = {**os.environ, "WATHEEQ_DATABASE_URL": host_url, "WATHEEQ_SECRET_KEY": key or ""}
    base_env.pop("REDIS_URL", None)
    for step in (["migrate"], ["seed-demo", "--calls", "300"]):
        done = subprocess.run([sys.executable, "-m", "services.cli", *step], cwd=ROOT, env=base_env, capture_output=True, text=True)
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    engine = sa.create_engine(host_url)
    from services.models import PbxSettings, Tenant

    with Session(engine) as s:
        tenant = s.execute(sa.select(Tenant).order_by(Tenant.id)).scalars().first()
        pbx = s.execute(sa.select(PbxSettings).where(PbxSettings.tenant_id == tenant.id)).scalar_one()
        # The demo firm's softphones reach the PBX lab through Caddy: wss on the one origin.
        pbx.host, pbx.transport, pbx.wss_port, pbx.wss_path = "localhost", "wss", 443, "/sip-ws"
        s.add(pbx)
        s.commit()
        tenant_id = tenant.id
    env_file = workdir / "watheeq.env"
    env_file.write_text("\n".join([
        "WATHEEQ_SITE_ADDRESS=localhost", "WATHEEQ_HTTPS_PORT=443", "WATHEEQ_HTTP_PORT=80",
        "WATHEEQ_TLS_MODE=internal", f"WATHEEQ_DATABASE_URL={ns_url}", "REDIS_URL=",
        "WATHEEQ_BACKEND_WORKERS=2", "WATHEEQ_SIDECARS=2", "WATHEEQ_WHATSAPP_GATEWAY=simulator",
        f"WATHEEQ_SECRET_KEY={key}", "WATHEEQ_PROD_PBX_LAB=on", f"DEV_PBX_DIR={workdir / 'pbx'}",
        f"WATHEEQ_PROD_RUN_DIR={run_dir}", "WATHEEQ_EXPOSE_WORKER=1",
        # Longer than a lease: a killed sidecar's firm is seen moving to the other one first.
        "WATHEEQ_PROD_RESTART_SECONDS=40", "",
    ]))
    env = {**os.environ, "WATHEEQ_PROD_ENV": str(env_file),
           "PATH": f"{ROOT / '.tools/node_modules/.bin'}:{os.environ.get('PATH', '')}"}
    env.pop("REDIS_URL", None)
    env.pop("WATHEEQ_DATABASE_URL", None)
    # Outside the namespace first: a fresh checkout's first build installs the npm packages.
    build_env = {**env, "REFLEX_API_URL": SITE, "REFLEX_USE_SYSTEM_BUN": "1", "REFLEX_CHECK_LATEST_VERSION": "0",
                 "WATHEEQ_DATABASE_URL": host_url, **e2e._registry_env()}
    built = subprocess.run([str(Path(sys.executable).parent / "reflex"), "export", "--frontend-only", "--no-zip", "--env", "prod"],
                           cwd=ROOT, env=build_env, capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-2000:]
    netns = e2e.LoopbackNetns()
    log = open(workdir / "run_prod.log", "w")
    proc = subprocess.Popen(netns.cmd(["bash", "scripts/run_prod.sh"]), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = Prod(netns=netns, proc=proc, workdir=workdir, run_dir=run_dir, engine=engine, tenant_id=tenant_id)
    try:
        def serving() -> bool:
            if proc.poll() is not None:
                raise AssertionError("run_prod.sh exited:\n" + (workdir / "run_prod.log").read_text()[-3000:])
            return running.ca.exists() and running.curl("--cacert", str(running.ca), "-o", "/dev/null", "-w", "%{http_code}",
                                                        f"{SITE}/api/v1/ready").stdout == "200"
        e2e.wait_until(serving, 400, "the production topology to be ready", interval=1)
        yield running
    finally:
        running.stop()
        log.close()
        netns.close()
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_https_only_http2_headers_and_redirect(prod: Prod) -> None:
    page = prod.curl("--cacert", str(prod.ca), "-D", "-", "-o", "/dev/null", f"{SITE}/")
    assert page.returncode == 0, page.stderr
    head = page.stdout.lower()
    assert head.startswith("http/2 200")
    assert "strict-transport-security: max-age=31536000" in head
    assert "x-content-type-options: nosniff" in head
    csp = re.search(r"content-security-policy: (.*)", head).group(1)
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "object-src 'none'" in csp
    assert "server:" not in head
    # Without the CA the certificate is refused: the chain is Caddy's internal CA, nothing else.
    assert prod.curl("-o", "/dev/null", f"{SITE}/").returncode != 0
    plain = prod.curl("-D", "-", "-o", "/dev/null", "http://localhost/calls?x=1")
    assert plain.stdout.startswith("HTTP/1.1 308"), plain.stdout
    assert re.search(r"(?im)^location: https://localhost/calls\?x=1\r?$", plain.stdout), plain.stdout
    api = prod.curl("--cacert", str(prod.ca), "-D", "-", f"{SITE}/api/v1/ready")
    assert '"status":"ready"' in api.stdout and "x-request-id:" in api.stdout.lower()
    gz = prod.curl("--cacert", str(prod.ca), "-H", "Accept-Encoding: gzip", "-D", "-", "-o", "/dev/null", f"{SITE}/")
    assert "content-encoding: gzip" in gz.stdout.lower()


def _sign_in(context, email: str) -> object:
    from playwright.sync_api import expect

    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if "ERR_CERT" in m.text else None)
    page.goto(f"{SITE}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill("watheeq-demo")
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{SITE}/", timeout=30_000)
    expect(page.get_by_test_id("nav-nav_calls")).to_be_visible()
    assert not errors
    return page


@pytest.fixture(scope="module")
def browser(prod: Prod):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=prod.chromium_wrapper(), args=list(SOFTPHONE_ARGS), env=prod.chromium_env())
        try:
            yield chromium
        finally:
            chromium.close()


def test_sign_in_history_filter_whatsapp_and_a_softphone_call_over_https_and_wss(prod: Prod, browser) -> None:
    from playwright.sync_api import expect

    manager = browser.new_context(viewport=e2e.VIEWPORT)
    page = _sign_in(manager, "manager@demo.watheeq.local")
    page.goto(f"{SITE}/calls")
    expect(page.get_by_test_id("call-row").first).to_be_visible()
    total = page.get_by_test_id("calls-total").inner_text()
    number = prod.a_remote_number()
    page.get_by_test_id("filter-number").fill(number[-7:])
    expect(page.get_by_test_id("calls-total")).not_to_have_text(total, timeout=15_000)
    expect(page.get_by_test_id("call-row").first).to_contain_text(number[-7:])

    admin = browser.new_context(viewport=e2e.VIEWPORT)
    wa = _sign_in(admin, "admin@demo.watheeq.local")
    wa.goto(f"{SITE}/whatsapp")
    expect(wa.get_by_test_id("wa-panel-disconnected")).to_be_visible()
    wa.get_by_test_id("wa-link").click()
    # A sidecar of the topology (simulator gateway) took the line and shows its QR.
    expect(wa.get_by_test_id("wa-qr")).to_be_visible(timeout=20_000)

    a, b = browser.new_context(viewport=e2e.VIEWPORT), browser.new_context(viewport=e2e.VIEWPORT)
    caller = e2e.Phone(_sign_in(a, "agent@demo.watheeq.local"), "agent@demo.watheeq.local", "1002")
    callee = e2e.Phone(_sign_in(b, "agent2@demo.watheeq.local"), "agent2@demo.watheeq.local", "1003")
    caller.expect_registered(30_000)
    callee.expect_registered(30_000)
    caller.dial_from_pad("1003")
    expect(callee.page.get_by_test_id("softphone-incoming")).to_be_visible(timeout=15_000)
    callee.page.get_by_test_id("softphone-answer").click()
    caller.expect_phase("in-call", 15_000)
    callee.expect_phase("in-call", 15_000)
    caller.expect_audio_flowing("agent over wss through Caddy")
    callee.expect_audio_flowing("agent2 over wss through Caddy")
    caller.page.get_by_test_id("softphone-hangup").click()
    for ctx in (manager, admin, a, b):
        ctx.close()


def _tab_on_a_new_worker(browser, email: str, taken: set[str], tries: int = 12):
    """A signed-in tab on /calls whose websocket is on a worker not in ``taken`` (new
    contexts until Granian hands one to another worker)."""
    from playwright.sync_api import expect

    for _ in range(tries):
        ctx = browser.new_context(viewport=e2e.VIEWPORT)
        page = _sign_in(ctx, email)
        page.goto(f"{SITE}/calls")
        expect(page.get_by_test_id("call-row").first).to_be_visible(timeout=20_000)
        pid = page.get_by_test_id("worker-pid").inner_text(timeout=10_000)
        assert pid.isdigit(), pid
        if pid not in taken:
            return ctx, page, pid
        ctx.close()
    raise AssertionError(f"every tab landed on worker(s) {taken}")


def test_a_live_update_reaches_a_browser_on_another_worker_within_a_second(prod: Prod, browser) -> None:
    from playwright.sync_api import expect

    watcher_ctx, watcher, watcher_pid = _tab_on_a_new_worker(browser, "manager@demo.watheeq.local", set())
    actor_ctx, actor, actor_pid = _tab_on_a_new_worker(browser, "admin@demo.watheeq.local", {watcher_pid})
    assert {int(watcher_pid), int(actor_pid)} <= set(prod.workers())
    total = watcher.get_by_test_id("calls-total").inner_text()
    # The admin deletes the newest call on their worker; the manager's history, served by the
    # other worker, shows one call fewer without any action or reload.
    actor.get_by_test_id("call-row").first.click()
    actor.get_by_test_id("delete-call").click()
    actor.get_by_test_id("delete-call-confirm").click()
    confirmed = time.monotonic()
    expect(watcher.get_by_test_id("calls-total")).not_to_have_text(total, timeout=5_000)
    seen_after = time.monotonic() - confirmed
    # The click's own round trip and the delete are inside this figure too.
    assert seen_after < 1.0, f"the other worker's tab saw the change after {seen_after:.2f} s"
    assert watcher.get_by_test_id("worker-pid").inner_text() == watcher_pid  # no reconnect, no reload
    watcher_ctx.close()
    actor_ctx.close()


def test_a_killed_backend_worker_is_replaced_and_browsers_continue(prod: Prod, browser) -> None:
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport=e2e.VIEWPORT)
    page = _sign_in(ctx, "manager@demo.watheeq.local")
    page.goto(f"{SITE}/calls")
    expect(page.get_by_test_id("call-row").first).to_be_visible()
    total = page.get_by_test_id("calls-total").inner_text()
    number = prod.a_remote_number()
    children = prod.workers()
    assert len(children) == 2, children
    os.kill(children[-1], signal.SIGKILL)
    # The page's websocket may have been on the killed worker: it reconnects, and an event
    # sent after the kill is answered (the filtered total differs from the unfiltered one).
    page.get_by_test_id("filter-number").fill(number[-7:])
    expect(page.get_by_test_id("calls-total")).not_to_have_text(total, timeout=20_000)
    expect(page.get_by_test_id("call-row").first).to_contain_text(number[-7:])
    # Granian replaced the worker; new page loads are served.
    e2e.wait_until(lambda: len(prod.workers()) == 2 and children[-1] not in prod.workers(), 30, "the killed worker replaced")
    page.goto(f"{SITE}/calls")
    expect(page.get_by_test_id("call-row").first).to_be_visible(timeout=20_000)
    ctx.close()


def test_a_killed_sidecar_s_firm_moves_to_the_other_sidecar_within_the_lease(prod: Prod) -> None:
    """The two sidecars of the topology share the firms under leases: the one holding the demo
    firm's line is killed (SIGKILL to its whole process group, as a crashed host would lose
    it) and the other takes the line over once the lease lapses (30 s, renewed every 10 s)."""
    from services.models import Role, User, WhatsappSession
    from services.whatsapp import sessions
    from tests.factories import principal_of

    def holder() -> str | None:
        with Session(prod.engine) as s:
            return s.execute(sa.select(WhatsappSession.worker_id).where(WhatsappSession.tenant_id == prod.tenant_id)).scalar_one_or_none()

    if holder() is None:
        # Run alone: ask for the line as the admin's "Link" does; a sidecar claims it.
        with Session(prod.engine) as s:
            admin = s.execute(sa.select(User).where(User.tenant_id == prod.tenant_id, User.role == Role.ADMIN)).scalars().first()
            sessions.init_session(session=s, tenant_id=prod.tenant_id, actor=principal_of(admin))
            s.commit()
    first = e2e.wait_until(holder, 30, "a sidecar holding the firm's line", interval=0.5)
    lock = ROOT / "data" / "whatsapp" / "sidecars" / f"{first.rsplit(':', 1)[1]}.lock"
    leader = int(lock.read_text().split()[0])
    assert leader in prod.netns.members()
    os.killpg(leader, signal.SIGKILL)
    killed = time.monotonic()
    second = e2e.wait_until(lambda: (h := holder()) not in (None, first) and h, 60, "the other sidecar taking the line", interval=0.5)
    took = time.monotonic() - killed
    print(f"\nsidecar {first} killed -> line held by {second} after {took:.1f} s (lease 30 s)")
    assert took <= 30 + 10, took
    # The topology goes on (a dead sidecar does not stop it) and restarts the killed one.
    assert prod.proc.poll() is None
    name = first.rsplit(":", 1)[1]
    e2e.wait_until(lambda: prod.log(f"{name}.log").count(" started (gateway ") == 2, 60, f"{name} restarted", interval=1)
    assert prod.curl("--cacert", str(prod.ca), "-o", "/dev/null", "-w", "%{http_code}", f"{SITE}/api/v1/ready").stdout == "200"
