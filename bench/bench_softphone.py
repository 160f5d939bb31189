"""Softphone timings on loopback: page load → registered (beside bare JsSIP's), dial → ringing.

Starts the same stack as the softphone e2e tests (the run command on a seeded temporary
database, the dev PBX, Debian's Chromium, all inside a loopback-only network namespace),
then measures with the softphone's own timeline (window.__watheeqSoftphone):

* page load → registered: a full reload of the dashboard until JsSIP's ``registered``
  (performance.now() at that moment, i.e. since navigation start);
* the floor, in the same run and the same namespace: a bare page (one HTML file and JsSIP,
  the same jssip version bundled and minified, served by a plain HTTP server on loopback)
  that registers the same agent with the same credentials, handed to it before it loads;
  navigation start → ``registered``. Each app reload follows one bare-page load;
* dial → ringing at the callee: the Call button at agent A until the INVITE has
  reached agent B's phone (its incoming card), and until A hears the 180 Ringing.

    .venv/bin/python bench/bench_softphone.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.softphone import e2e_support as e2e  # noqa: E402

CALLER = ("agent@demo.watheeq.local", "1002")
CALLEE = ("agent2@demo.watheeq.local", "1003")
BARE_PORT = 3999

BARE_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>bare JsSIP</title><script src="/jssip.js"></script></head>
<body><script>
const cfg = window.__bareSip;
const ua = new JsSIP.UA({
  sockets: [new JsSIP.WebSocketInterface(cfg.wss_url)], uri: cfg.sip_uri,
  authorization_user: cfg.authorization_user, password: cfg.password,
  instance_id: cfg.instance_id, register: true,
});
ua.on("registered", () => { window.__registered = performance.now(); });
ua.start();
window.__ua = ua;
</script></body></html>
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-int(q * 100) * len(ordered) // 100) - 1))]


def _summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    line = (f"{name:<38} n={len(ms):<3} min {ms[0]:6.0f} ms   median {statistics.median(ms):6.0f} ms   "
            f"p95 {_pct(ms, 0.95):6.0f} ms   max {ms[-1]:6.0f} ms")
    print(line, flush=True)
    return line


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _bare_site(workdir: Path) -> Path:
    """bare.html and jssip.js (the pinned jssip the app's frontend build installed, bundled
    and minified by bun as the app's build minifies it)."""
    from watheeq_ui.components.softphone.softphone import JSSIP

    site = workdir / "bare"
    site.mkdir()
    jssip = e2e.ROOT / ".web" / "node_modules" / "jssip"
    version = json.loads((jssip / "package.json").read_text())["version"]
    assert JSSIP == f"jssip@{version}", f"the build installed jssip {version}, the app pins {JSSIP}"
    entry = workdir / "bare-entry.js"
    entry.write_text(f'import JsSIP from "{jssip / "lib" / "JsSIP.js"}";\nwindow.JsSIP = JsSIP;\n')
    bun = e2e.ROOT / ".tools" / "node_modules" / ".bin" / "bun"
    subprocess.run([str(bun), "build", str(entry), "--minify", "--outfile", str(site / "jssip.js")], check=True,
                   capture_output=True)
    (site / "bare.html").write_text(BARE_HTML)
    return site


def _credentials(stack: e2e.Stack, email: str) -> dict:
    from services import accounts, call_center
    from services.seed import DEMO_PASSWORD

    with stack.session() as session:
        agent = accounts.authenticate(session=session, email=email, password=DEMO_PASSWORD)
        cfg = call_center.get_extension_for_user(session=session, tenant_id=agent.tenant_id, user_id=agent.user_id)
    return {"wss_url": cfg.wss_url, "sip_uri": cfg.sip_uri, "authorization_user": cfg.authorization_user,
            "password": cfg.password}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    reason = e2e.skip_reason()
    if reason:
        print(f"softphone benchmark skipped: {reason}")
        return 0
    with tempfile.TemporaryDirectory(prefix="watheeq-bench-softphone-") as tmp:
        started = time.monotonic()
        stack = e2e.start_stack(Path(tmp))
        print(f"stack up in {time.monotonic() - started:.1f} s (run command, dev PBX, Chromium in a loopback-only netns)")
        site = _bare_site(Path(tmp))
        server = subprocess.Popen(
            stack.netns.cmd([sys.executable, "-m", "http.server", str(BARE_PORT), "--bind", "127.0.0.1", "--directory", str(site)]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            e2e.wait_until(lambda: stack.netns.listening(BARE_PORT), 10, "the bare page's HTTP server")
            creds = {email: _credentials(stack, email) for email, _ in (CALLER, CALLEE)}
            loads = [_load_average()]
            with e2e.chromium(stack) as browser:
                a = e2e.sign_in(browser.new_context(viewport=e2e.VIEWPORT), *CALLER)
                b = e2e.sign_in(browser.new_context(viewport=e2e.VIEWPORT), *CALLEE)
                bare_context = browser.new_context(viewport=e2e.VIEWPORT)
                registered, floor, at_callee, ringback = [], [], [], []
                for run in range(args.runs):
                    for phone in (a, b):
                        # The floor: the same agent's credentials on the bare page (another SIP
                        # instance), then unregistered before the app's page reloads.
                        bare = bare_context.new_page()
                        bare.add_init_script(f"window.__bareSip = {json.dumps({**creds[phone.email], 'instance_id': f'00000000-0000-4000-8000-{run:012d}'})};")
                        bare.goto(f"http://127.0.0.1:{BARE_PORT}/bare.html")
                        bare.wait_for_function("() => window.__registered !== undefined", timeout=15_000)
                        floor.append(bare.evaluate("() => window.__registered") / 1000)
                        bare.evaluate("() => new Promise((done) => { window.__ua.on('unregistered', done); window.__ua.unregister(); })")
                        bare.evaluate("() => window.__ua.stop()")
                        bare.close()
                        e2e.wait_until(lambda: stack.pbx.contacts(phone.extension) == 1, 10, "the bare page's binding gone")
                        phone.page.reload()
                        phone.expect_registered()
                        registered.append(phone.mark("reg:registered")["t"] / 1000)
                    e2e.wait_until(lambda: stack.pbx.contacts(CALLER[1]) == 1 and stack.pbx.contacts(CALLEE[1]) == 1,
                                   10, "one binding per agent")
                    a.dial_from_pad(CALLEE[1])
                    b.page.get_by_test_id("softphone-incoming").wait_for(timeout=10_000)
                    dial = a.mark("dial")
                    at_callee.append((b.mark("call:new")["at"] - dial["at"]) / 1000)
                    ringback.append((a.mark("call:progress")["at"] - dial["at"]) / 1000)
                    a.page.get_by_test_id("softphone-hangup").click()
                    b.page.get_by_test_id("softphone-incoming").wait_for(state="hidden", timeout=10_000)
                loads.append(_load_average())
                print(f"load average (1/5/15 min) at start | at the end: {' | '.join(loads)}")
                _summary("page load -> registered (the app)", registered)
                _summary("floor: bare JsSIP page -> registered", floor)
                ratio = statistics.median(registered) / statistics.median(floor)
                print(f"ratio of the medians: {ratio:.2f}x (target < 2x)")
                _summary("dial -> incoming at the callee", at_callee)
                _summary("dial -> 180 Ringing at the caller", ringback)
        finally:
            server.terminate()
            server.wait(timeout=10)
            stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
