"""Fixtures for the softphone's browser end-to-end tests (and the softphone benchmark).

Everything that carries SIP or media runs inside one private network namespace whose only
interface is ``lo``: the app and the dev PBX (both started by ``scripts/run.sh``, the run
command; a test that kills the PBX restarts it with ``scripts/dev_pbx.sh``) and Chromium (through a two-line wrapper that enters
the namespace before exec'ing Debian's ``/usr/bin/chromium``). Playwright talks to Chromium
over a pipe, so the test process itself stays outside. Nothing in the namespace can reach
anything but 127.0.0.1 / ::1; ports cannot clash with another app running on the host.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from tests.browser import CHROMIUM, SOFTPHONE_ARGS

ROOT = Path(__file__).resolve().parents[2]
# The run command's own defaults: inside the namespace nothing else holds them.
FRONTEND_PORT = 3000
BACKEND_PORT = 8000
BASE_URL = f"http://localhost:{FRONTEND_PORT}"
OUTPUT = ROOT / "test-output"
SCREENSHOTS = OUTPUT / "screenshots"



def skip_reason() -> str | None:
    """Why the softphone e2e tests cannot run here, or None."""
    for tool in ("kamailio", "kamcmd", "unshare", "nsenter", "openssl", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (see scripts/system_deps.sh)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (Debian package chromium)"
    if not glob.glob("/usr/lib/*/kamailio/modules/websocket.so") or not glob.glob("/usr/lib/*/kamailio/modules/tls.so"):
        return "kamailio-websocket-modules / kamailio-tls-modules are not installed"
    if not (ROOT / ".tools/node_modules/.bin/bun").exists():
        return "bun is not installed (run scripts/setup.sh)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    if os.geteuid() != 0:
        return "unshare --net needs root: the media of these tests must stay on a loopback-only network"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        return "network namespaces are not available here (unshare --net failed)"
    return None


def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class LoopbackNetns:
    """A network namespace with only ``lo`` up, held open by a sleeping process."""

    def __init__(self) -> None:
        self._holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], start_new_session=True)
        self.pid = self._holder.pid
        # Until unshare has run, the new process is still in our namespace: configuring it
        # then would bring up our own lo and leave the new one down.
        host = os.stat("/proc/self/ns/net").st_ino
        self.inode = wait_until(self._own_namespace(host), 5, "the new network namespace", interval=0.01)
        subprocess.run(self.cmd(["ip", "link", "set", "lo", "up"]), check=True, capture_output=True)
        wait_until(lambda: self.lo_up(), 5, "lo up in the namespace")

    def _own_namespace(self, host: int) -> Callable[[], int | None]:
        def check() -> int | None:
            inode = os.stat(f"/proc/{self.pid}/ns/net").st_ino
            return inode if inode != host else None

        return check

    def lo_up(self) -> bool:
        out = subprocess.run(self.cmd(["ip", "-o", "link", "show", "lo"]), capture_output=True, text=True).stdout
        return ",UP" in out or "<UP" in out

    def cmd(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", "--", *argv]

    def http_ok(self, url: str) -> bool:
        probe = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)"
        return subprocess.run(self.cmd([sys.executable, "-c", probe, url]), capture_output=True).returncode == 0

    def listening(self, port: int) -> bool:
        out = subprocess.run(self.cmd(["ss", "-Hltn", f"sport = :{port}"]), capture_output=True, text=True).stdout
        return bool(out.strip())

    def members(self) -> list[int]:
        """Every process in this namespace: all of them were started by these fixtures."""
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != self.pid:
                try:
                    if os.stat(f"/proc/{entry}/ns/net").st_ino == self.inode:
                        pids.append(int(entry))
                except OSError:
                    continue
        return pids

    def close(self) -> None:
        # Whatever a crashed run left behind in the namespace goes with it.
        for pid in self.members():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._holder.kill()
        self._holder.wait()


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


class DevPbx:
    """The dev PBX inside the namespace: the one the run command started, and after a
    :meth:`kill` one this test starts itself, exactly as ``make dev-pbx`` runs it."""

    WS_PORT = 8088

    def __init__(self, netns: LoopbackNetns, workdir: Path, env: dict[str, str]) -> None:
        self.netns = netns
        self.dir = Path(env["DEV_PBX_DIR"])
        self.env = {**env, "PYTHON": sys.executable}
        self.ctl = self.dir / "kamailio.ctl"
        self.own_log = workdir / "kamailio.log"
        self.proc: subprocess.Popen | None = None  # only when this test started it
        self.pgid: int | None = None

    def attach(self) -> None:
        """Waits for the PBX the run command started (Kamailio's main process leads its group)."""
        wait_until(self._answers, 30, "the run command's dev PBX to start")
        wait_until(lambda: self.netns.listening(self.WS_PORT), 5, f"ws://127.0.0.1:{self.WS_PORT}")
        self.pgid = int((self.dir / "kamailio.pid").read_text().strip())

    def start(self) -> None:
        log = open(self.own_log, "a")
        self.proc = subprocess.Popen(
            self.netns.cmd(["bash", "scripts/dev_pbx.sh"]), cwd=ROOT, env=self.env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        self.pgid = self.proc.pid
        wait_until(self._answers, 15, "the dev PBX to start")
        # The control socket answers a moment before the SIP workers: wait for the ws port.
        wait_until(lambda: self.netns.listening(self.WS_PORT), 5, f"ws://127.0.0.1:{self.WS_PORT}")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"the dev PBX exited:\n{self.log()[-3000:]}")
        return self.ctl.exists() and subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl}", "core.uptime"], capture_output=True
        ).returncode == 0

    def registered(self) -> str:
        """The registrar's bindings (``kamcmd ul.dump``)."""
        return subprocess.run(["kamcmd", "-s", f"unix:{self.ctl}", "ul.dump"], capture_output=True, text=True).stdout

    def contacts(self, extension: str) -> int:
        """How many bindings the registrar holds for this extension (in any firm's domain)."""
        return sum(section.count("Contact:") for section in self.sections(extension))

    def sections(self, extension: str) -> list[str]:
        """The ``ul.dump`` text of each AoR ``<extension>@<domain>``."""
        parts = self.registered().split("AoR: ")[1:]
        return [p for p in parts if p.startswith(f"{extension}@")]

    def _signal(self, sig: int) -> None:
        assert self.pgid is not None
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye on any WebSocket."""
        self._signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        wait_until(lambda: not self.netns.listening(self.WS_PORT), 5, "the killed PBX's sockets to close")

    def stop(self) -> None:
        # The run command stops the PBX it started; this stops the one the test started.
        if self.proc is None or self.proc.poll() is not None:
            return
        _kill_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        logs = [self.dir / "kamailio.log", self.own_log]
        return "".join(p.read_text(errors="replace") for p in logs if p.exists())


class _Exited(Exception):
    pass


class App:
    """The product as ``make run`` starts it (``scripts/run.sh``), inside the namespace."""

    def __init__(self, netns: LoopbackNetns, workdir: Path, env: dict[str, str]) -> None:
        self.netns = netns
        self.env = env
        self.log_path = workdir / "app.log"
        self.proc: subprocess.Popen | None = None

    def build_frontend(self) -> None:
        # Outside the namespace: a fresh checkout's first compile installs the npm packages.
        # The run command then rebuilds inside the namespace from the installed packages.
        with open(self.log_path, "a") as log:
            done = subprocess.run(
                [str(Path(sys.executable).parent / "reflex"), "export", "--frontend-only", "--no-zip", "--env", "prod"],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=600,
            )
        if done.returncode != 0:
            raise AssertionError(f"the frontend did not build:\n{self.log()[-3000:]}")

    def start(self) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            self.netns.cmd(["bash", "scripts/run.sh"]), cwd=ROOT, env=self.env,
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        try:
            wait_until(self._serving, 240, "the app to serve", interval=0.5)
        except _Exited:
            raise AssertionError(f"the run command exited while starting:\n{self.log()[offset:][-4000:]}") from None

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise _Exited
        # Look at the listening sockets first: no connection is made while the app builds.
        return (
            self.netns.listening(BACKEND_PORT)
            and self.netns.listening(FRONTEND_PORT)
            and self.netns.http_ok(f"http://localhost:{BACKEND_PORT}/ping")
            and self.netns.http_ok(f"{BASE_URL}/login")
        )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # run.sh traps TERM and stops the process groups of its children itself.
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc, signal.SIGKILL)
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _registry_env() -> dict[str, str]:
    # Reflex would otherwise probe several registries to pick one; use npm's own setting.
    if os.environ.get("NPM_CONFIG_REGISTRY"):
        return {}
    out = subprocess.run(["npm", "config", "get", "registry"], capture_output=True, text=True)
    return {"NPM_CONFIG_REGISTRY": out.stdout.strip()} if out.returncode == 0 and out.stdout.strip() else {}


@dataclass
class Stack:
    """The running app, dev PBX and database of one test module."""

    netns: LoopbackNetns
    pbx: DevPbx
    app: App
    db_url: str
    workdir: Path
    engine: sa.Engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def chromium_wrapper(self) -> str:
        path = self.workdir / "chromium-in-netns"
        path.write_text(f'#!/bin/sh\nexec nsenter -t {self.netns.pid} -n -- {CHROMIUM} "$@"\n')
        path.chmod(0o755)
        return str(path)

    def chromium_args(self) -> list[str]:
        # No certificate is trusted beyond the system's: the demo firm uses ws:// on loopback.
        return list(SOFTPHONE_ARGS)

    def chromium_env(self) -> dict[str, str]:
        home = self.workdir / "chromium-home"
        home.mkdir(exist_ok=True)
        return {**os.environ, "HOME": str(home), "TMPDIR": str(home)}

    def close(self) -> None:
        try:
            self.app.stop()
        finally:
            try:
                self.pbx.stop()
            finally:
                self.engine.dispose()
                self.netns.close()


def start_stack(workdir: Path, prepare: Callable[[str], None] | None = None) -> Stack:
    """Seed a temporary SQLite database with the demo firm, then start the PBX and the app.

    ``prepare(db_url)`` runs after the seed and before the PBX exports its credentials
    (a bench adds agents and extensions there)."""
    from services import db

    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'watheeq.db'}"
    env = {
        **os.environ,
        **_registry_env(),
        "WATHEEQ_DATABASE_URL": db_url,
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        "WATHEEQ_FRONTEND_PORT": str(FRONTEND_PORT),
        "WATHEEQ_BACKEND_PORT": str(BACKEND_PORT),
        "WATHEEQ_RUN_ENV": "prod",
        "PATH": f"{ROOT / '.tools/node_modules/.bin'}:{os.environ.get('PATH', '')}",
        "REFLEX_USE_SYSTEM_BUN": "1",
        "REFLEX_CHECK_LATEST_VERSION": "0",
        "REFLEX_API_URL": f"http://localhost:{BACKEND_PORT}",
        # The run command starts the dev PBX here, inside the namespace.
        "WATHEEQ_DEV_PBX": "on",
        "DEV_PBX_DIR": str(workdir / "pbx"),
    }
    env.pop("REDIS_URL", None)
    for step in (["migrate"], ["seed-demo"]):
        done = subprocess.run([sys.executable, "-m", "services.cli", *step], cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise AssertionError(f"services.cli {step[0]} failed:\n{(done.stdout + done.stderr)[-2000:]}")
    if prepare is not None:
        prepare(db_url)
    netns = LoopbackNetns()
    pbx = DevPbx(netns, workdir, env)
    app = App(netns, workdir, env)
    try:
        app.build_frontend()
        app.start()
        pbx.attach()
    except BaseException:
        app.stop()
        pbx.stop()
        netns.close()
        raise
    return Stack(netns=netns, pbx=pbx, app=app, db_url=db_url, workdir=workdir, engine=db.create_db_engine(db_url))


# ---------------------------------------------------------------------------- in the page

# Sum of the audio bytes received on the first call's RTCPeerConnection (None without one).
JS_BYTES_RECEIVED = """async () => {
  const c = window.__watheeqSoftphone && window.__watheeqSoftphone.calls()[0];
  if (!c || !c.pc) return null;
  const report = await c.pc.getStats();
  let bytes = 0;
  report.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") bytes += s.bytesReceived || 0; });
  return bytes;
}"""

JS_TIMELINE = "() => (window.__watheeqSoftphone ? window.__watheeqSoftphone.timeline : [])"


def timeline(page) -> list[dict[str, Any]]:
    return page.evaluate(JS_TIMELINE)


def last_mark(page, type_: str) -> dict[str, Any] | None:
    marks = [m for m in timeline(page) if m["type"] == type_]
    return marks[-1] if marks else None


def save_timings(name: str, figures: dict[str, Any]) -> None:
    """Measured figures, printed and kept in test-output/softphone-timings.json."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "softphone-timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = figures
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"softphone timing {name}: {figures}")


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"softphone-{name}.png"))


VIEWPORT = {"width": 1280, "height": 800}


def _expect():
    from playwright.sync_api import expect

    return expect


@contextlib.contextmanager
def chromium(stack: Stack, extra_args: tuple[str, ...] = ()) -> Iterator[Any]:
    """Debian's Chromium inside the stack's namespace, driven by Playwright over a pipe."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=stack.chromium_wrapper(), args=[*stack.chromium_args(), *extra_args],
            env=stack.chromium_env(),
        )
        try:
            yield browser
        finally:
            browser.close()


class Phone:
    """One agent's browser page, driven through the softphone's own controls."""

    def __init__(self, page, email: str, extension: str) -> None:
        self.page = page
        self.email = email
        self.extension = extension

    @property
    def toggle(self):
        return self.page.get_by_test_id("softphone-toggle")

    def expect_registered(self, timeout: float = 15_000) -> None:
        _expect()(self.toggle).to_have_attribute("data-state", "registered", timeout=timeout)

    def open_panel(self) -> None:
        if not self.page.get_by_test_id("softphone-panel").is_visible():
            self.toggle.click()
        _expect()(self.page.get_by_test_id("softphone-panel")).to_be_visible()

    def dial_from_pad(self, number: str) -> None:
        """Types the number on the dial pad's keys, then presses Call."""
        self.open_panel()
        field = self.page.get_by_test_id("softphone-number")
        field.fill("")
        pad = self.page.locator(".wq-sp-pad")
        for digit in number:
            pad.get_by_role("button", name=digit, exact=True).click()
        _expect()(field).to_have_value(number)
        self.page.get_by_test_id("softphone-dial").click()

    def call_state(self):
        return self.page.get_by_test_id("softphone-call-state")

    def expect_phase(self, phase: str, timeout: float = 10_000) -> None:
        _expect()(self.page.get_by_test_id("softphone-call")).to_have_attribute("data-phase", phase, timeout=timeout)

    def bytes_received(self) -> int | None:
        return self.page.evaluate(JS_BYTES_RECEIVED)

    def expect_audio_flowing(self, what: str) -> None:
        start = wait_until(lambda: self.bytes_received() is not None, 5, f"{what}: a peer connection")
        wait_until(lambda: (self.bytes_received() or 0) > start + 500, 8, f"{what}: audio bytes arriving")

    def call_id(self) -> str:
        return wait_until(
            lambda: self.page.evaluate("() => (window.__watheeqSoftphone.calls()[0] || {}).callId"), 5, "the SIP Call-ID"
        )

    def mark(self, type_: str) -> dict:
        return wait_until(lambda: last_mark(self.page, type_), 10, f"{self.extension}: {type_}")


def sign_in(context, email: str, extension: str, password: str | None = None) -> Phone:
    """Signs in through the login page; returns once the agent's phone is registered."""
    from services.seed import DEMO_PASSWORD

    page = context.new_page()
    page.goto(f"{BASE_URL}/login")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(password or DEMO_PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{BASE_URL}/", timeout=20_000)
    phone = Phone(page, email, extension)
    phone.expect_registered()
    return phone
