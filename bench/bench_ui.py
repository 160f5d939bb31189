"""Dashboard benchmark: the production build in headless Chromium on a big database.

Targets (issue 3): the dashboard of a tenant with 100,000 calls fully rendered within
2 s of navigation; a call-history filter change updates the table within 300 ms; small
websocket payloads (bytes per event are printed).

    .venv/bin/python bench/bench_ui.py                      # seeds bench/data/ui.db once (10 firms, 1,000,000 calls)
    .venv/bin/python bench/bench_ui.py --database-url sqlite:///other.db --runs 10

The app is started with scripts/run.sh (production build) on free ports.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _seed(database_url: str, calls: int, tenants: int) -> None:
    env = {**os.environ, "WATHEEQ_DATABASE_URL": database_url}
    py = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run([py, "-m", "services.cli", "migrate"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [py, "-m", "services.cli", "seed-demo", "--if-empty", "--tenants", str(tenants), "--calls", str(calls), "--clients-per-tenant", "10000"],
        cwd=ROOT,
        env=env,
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'bench' / 'data' / 'ui.db'}")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--email", default="owner@demo.watheeq.local")
    parser.add_argument("--password", default="watheeq-demo")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()

    if args.database_url.startswith("sqlite:///"):
        Path(args.database_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _seed(args.database_url, args.calls, args.tenants)
    print(f"database ready in {time.perf_counter() - t0:.1f} s: {args.database_url}")

    frontend, backend = _free_port(), _free_port()
    env = {
        **os.environ,
        "WATHEEQ_DATABASE_URL": args.database_url,
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        "WATHEEQ_FRONTEND_PORT": str(frontend),
        "WATHEEQ_BACKEND_PORT": str(backend),
        "WATHEEQ_RUN_ENV": "prod",
    }
    log = ROOT / "bench" / "results" / "bench_ui_run.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{frontend}"
    try:
        deadline = time.monotonic() + 600
        while not (_answers(base + "/login") and _answers(f"http://127.0.0.1:{backend}/ping")):
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"the app did not start; see {log}", file=sys.stderr)
                return 1
            time.sleep(1)
        return _measure(base, args)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


def _measure(base: str, args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900}, base_url=base)
        frames: list[int] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(len(payload) if isinstance(payload, (bytes, str)) else 0)))

        page.goto("/login")
        page.get_by_test_id("login-email").fill(args.email)
        page.get_by_test_id("login-password").fill(args.password)
        page.get_by_test_id("login-submit").click()
        page.get_by_test_id("stat-total").wait_for(timeout=60_000)
        total_calls = page.get_by_test_id("stat-total").inner_text()

        # Dashboard: navigation start to cards, both charts and the agent table on screen.
        dash: list[float] = []
        dash_bytes: list[int] = []
        for _ in range(args.runs):
            page.goto("/calls")
            page.get_by_test_id("calls-table").wait_for(timeout=60_000)
            frames.clear()
            start = time.perf_counter()
            page.goto("/")
            page.locator("[data-testid=chart-hour] .js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
            page.locator("[data-testid=chart-trend] .js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
            page.get_by_test_id("agents-table").wait_for(timeout=60_000)
            page.get_by_test_id("stat-total").wait_for()
            dash.append((time.perf_counter() - start) * 1000)
            dash_bytes.append(sum(frames))

        # History: a status filter change until the table shows the new total.
        page.goto("/calls")
        page.get_by_test_id("call-row").first.wait_for(timeout=60_000)
        filt: list[float] = []
        filt_bytes: list[int] = []
        statuses = ["Missed", "Completed", "Any"]
        for i in range(args.runs * len(statuses)):
            label = statuses[i % len(statuses)]
            before = page.get_by_test_id("calls-total").inner_text()
            page.get_by_test_id("filter-status").click()
            option = page.get_by_role("option", name=label, exact=True)
            option.wait_for()
            frames.clear()
            start = time.perf_counter()
            option.click()
            page.wait_for_function(
                "([before]) => { const e = document.querySelector('[data-testid=calls-total]'); return e && e.innerText !== before; }",
                arg=[before],
                timeout=30_000,
            )
            filt.append((time.perf_counter() - start) * 1000)
            filt_bytes.append(sum(frames))

        # Deep page: the last page of the unfiltered history.
        page.get_by_test_id("page-last").click()
        start = time.perf_counter()
        page.wait_for_function("() => { const e = document.querySelector('[data-testid=page-of]'); if (!e) return false; const m = e.innerText.match(/(\\d+)\\D+(\\d+)/); return m && m[1] === m[2] && m[1] !== '1'; }", timeout=30_000)
        deep_ms = (time.perf_counter() - start) * 1000
        browser.close()

    print(f"tenant calls today (dashboard card): {total_calls}")
    print(f"dashboard fully rendered after navigation: p50 {statistics.median(dash):.0f} ms, p95 {_pct(dash, 0.95):.0f} ms, max {max(dash):.0f} ms (target < 2000 ms, {len(dash)} runs)")
    print(f"  websocket bytes received per dashboard load: median {statistics.median(dash_bytes):,.0f}")
    print(f"history filter change to updated table: p50 {statistics.median(filt):.0f} ms, p95 {_pct(filt, 0.95):.0f} ms, max {max(filt):.0f} ms (target < 300 ms, {len(filt)} runs)")
    print(f"  websocket bytes received per filter change: median {statistics.median(filt_bytes):,.0f}, max {max(filt_bytes):,}")
    print(f"jump to the last page of the unfiltered history: {deep_ms:.0f} ms")
    ok = _pct(dash, 0.95) < 2000 and _pct(filt, 0.95) < 300
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
