"""Dashboard benchmark: the production build in headless Chromium on a big database.

Targets (issue 3): the dashboard of a tenant with 100,000 calls fully rendered within
2 s of navigation; a call-history filter change updates the table within 300 ms; small
websocket payloads (bytes per event are printed).

    .venv/bin/python bench/bench_ui.py                  # seeds bench/data/ui.db once (10 firms, 1,000,000 calls)
    .venv/bin/python bench/bench_ui.py --runs 10 --database-url sqlite:////path/other.db

The app is started with scripts/run.sh (production build) on free ports (or --frontend-port
and --backend-port). All times are taken inside the page (performance.now(), whose origin
is the navigation start; event timestamps for clicks), so Playwright's own round trips are
not counted. Websocket bytes are the sizes of the frames Playwright sees (UTF-8 bytes).

Figures:
- dashboard, full load: a new tab (so a new, empty page state on the server) opens "/";
  from navigation start until the eight cards, both Plotly charts (their SVG) and the agent
  table are in the DOM, and the next frame painted.
- dashboard, in-app: a new tab on /calls, then the sidebar link; from the click.
- filter change: the status select on /calls; from the pointer-down on the option until
  the table body and the total show the new result, and the next frame painted.
- page change: the "next page" button, likewise.
- the service calls behind those events, timed directly against the same database.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS, answers, free_port  # noqa: E402

SETTLE_MS = 500  # after the result is on screen, frames still arriving are counted to the event

# Fully rendered: the cards, both charts drawn with their data and the agent table. A chart
# is drawn when Plotly has drawn its SVG (up to 2026-11-30), or when the SVG chart
# (components/charts/figure_chart.jsx) holds one mark per data point of its figure.
DASHBOARD_READY = """() => {
  const drawn = (id) => {
    if (document.querySelector(`[data-testid=${id}] .js-plotly-plot .main-svg`)) return true;
    const svg = document.querySelector(`[data-testid=${id}] svg.wq-chart`);
    const points = svg ? Number(svg.dataset.points) : 0;
    return points > 0 && svg.querySelectorAll('[data-y]').length >= points;
  };
  return !!(document.querySelector('[data-testid=stat-total]') && drawn('chart-hour') && drawn('chart-trend') &&
    document.querySelector('[data-testid=agents-table]'));
}"""

# Runs before the app's scripts in every page: websocket open/send/receive times and a
# watcher that stamps when a condition first holds (and the frame after it is painted).
INIT_SCRIPT = """
(() => {
  const wq = window.__wq = {ws: [], marks: {}, watch: null};
  const Native = window.WebSocket;
  const size = (d) => typeof d === 'string' ? new TextEncoder().encode(d).length : (d.byteLength ?? d.size ?? 0);
  function Wrapped(url, protocols) {
    const ws = protocols === undefined ? new Native(url) : new Native(url, protocols);
    ws.addEventListener('open', () => wq.ws.push({t: performance.now(), k: 'open', n: 0}));
    ws.addEventListener('message', (e) => wq.ws.push({t: performance.now(), k: 'in', n: size(e.data)}));
    const send = ws.send.bind(ws);
    ws.send = (d) => { wq.ws.push({t: performance.now(), k: 'out', n: size(d)}); return send(d); };
    return ws;
  }
  Wrapped.prototype = Native.prototype;
  for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED']) Wrapped[k] = Native[k];
  window.WebSocket = Wrapped;
  // A watch: {name, test: () => bool, from: 'nav' | 'input'}; 'input' starts at the next pointer-down.
  for (const type of ['pointerdown', 'keydown']) {
    document.addEventListener(type, (e) => {
      const w = wq.watch;
      if (w && w.from === 'input' && w.t0 === undefined) w.t0 = e.timeStamp;
    }, true);
  }
  const check = () => {
    const w = wq.watch;
    if (!w || w.t1 !== undefined || (w.from === 'input' && w.t0 === undefined)) return;
    let ok = false;
    try { ok = w.test(); } catch (e) { ok = false; }
    if (!ok) return;
    w.t1 = performance.now();
    requestAnimationFrame(() => setTimeout(() => {
      w.painted = performance.now();
      wq.marks[w.name] = {t0: w.from === 'nav' ? 0 : w.t0, dom: w.t1, painted: w.painted};
    }, 0));
  };
  wq.check = check;
  new MutationObserver(check).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
})();
"""




def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-int(q * 100) * len(ordered) // 100) - 1))]


def _summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values):.0f} ms, p95 {_pct(values, 0.95):.0f} ms, min {min(values):.0f}, max {max(values):.0f} ({len(values)} runs)"


def _load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _prepare(database_url: str, calls: int, tenants: int, clients_per_tenant: int) -> None:
    """Migrate and seed (once) the database; a file made by bench_call_center.py is used as is."""
    import sqlalchemy as sa
    from services import db

    env = {**os.environ, "WATHEEQ_DATABASE_URL": database_url}
    py = str(ROOT / ".venv" / "bin" / "python")
    engine = db.create_db_engine(database_url)
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    # bench_call_center.py builds its file with create_all, without Alembic's version table.
    if "tenant" not in tables or "alembic_version" in tables:
        subprocess.run([py, "-m", "services.cli", "migrate"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [py, "-m", "services.cli", "seed-demo", "--if-empty", "--tenants", str(tenants), "--calls", str(calls),
         "--clients-per-tenant", str(clients_per_tenant)],
        cwd=ROOT,
        env=env,
        check=True,
    )


def _service_times(database_url: str, email: str, runs: int) -> list[str]:
    """The service calls behind the dashboard and history events, timed against the same file."""
    from datetime import datetime, time as dtime, timedelta
    from zoneinfo import ZoneInfo

    import sqlalchemy as sa

    from services import call_center, db
    from services.models import Call, CallFilters, CallStatus, Principal, Tenant, User

    engine = db.create_db_engine(database_url)
    db.configure(engine)
    lines: list[str] = []
    try:
        with db.session_scope() as session:
            user = session.execute(sa.select(User).where(User.email == email)).scalar_one()
            principal = Principal(user_id=user.id, tenant_id=user.tenant_id, role=user.role, email=user.email)
            tz = ZoneInfo(session.execute(sa.select(Tenant.timezone).where(Tenant.id == user.tenant_id)).scalar_one())
            tenant_calls = session.execute(sa.select(sa.func.count()).select_from(Call).where(Call.tenant_id == user.tenant_id)).scalar_one()
            all_calls = session.execute(sa.select(sa.func.count()).select_from(Call)).scalar_one()
        lines.append(f"data: {all_calls:,} calls in the database, {tenant_calls:,} of them the tenant's ({email})")
        today = datetime.now(tz).date()
        trend_start = datetime.combine(today - timedelta(days=29), dtime(0), tzinfo=tz)

        def timed(label: str, fn) -> None:
            times = []
            for _ in range(runs):
                began = time.perf_counter()
                with db.session_scope() as session:
                    fn(session)
                times.append((time.perf_counter() - began) * 1000)
            lines.append(f"  {label}: {_summary(times)}")

        common = {"tenant_id": principal.tenant_id, "actor": principal}
        timed("get_stats today", lambda s: call_center.get_stats(session=s, **common))
        timed("get_stats 30 days", lambda s: call_center.get_stats(session=s, date_from=trend_start, **common))
        for label, statuses in (("any", []), ("MISSED", [CallStatus.MISSED]), ("COMPLETED", [CallStatus.COMPLETED])):
            timed(
                f"get_call_history page 1, status {label}",
                lambda s, st=statuses: call_center.get_call_history(session=s, filters=CallFilters(statuses=st), page=1, page_size=50, **common),
            )
        timed("get_call_history page 2", lambda s: call_center.get_call_history(session=s, filters=CallFilters(), page=2, page_size=50, **common))
    finally:
        db.configure(None)
        engine.dispose()
    return lines


class Frames:
    """Websocket frames of a page as Playwright sees them."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.sent: list[int] = []

    def attach(self, page) -> None:
        def on_ws(ws) -> None:
            ws.on("framereceived", lambda p: self.received.append(len(p.encode()) if isinstance(p, str) else len(p)))
            ws.on("framesent", lambda p: self.sent.append(len(p.encode()) if isinstance(p, str) else len(p)))

        page.on("websocket", on_ws)

    def clear(self) -> None:
        self.received.clear()
        self.sent.clear()

    def take(self) -> tuple[int, int, int, int]:
        """(bytes received, frames received, largest frame received, bytes sent)."""
        return sum(self.received), len(self.received), max(self.received, default=0), sum(self.sent)


def _watch(page, name: str, test: str, origin: str, args: dict | None = None) -> None:
    page.evaluate(
        "([name, test, origin, args]) => { const fn = (0, eval)(test); window.__wq.watch = {name, from: origin, test: () => fn(args)}; }",
        [name, test, origin, args or {}],
    )


def _mark(page, name: str, timeout_ms: int = 60_000) -> dict:
    page.wait_for_function("(name) => !!window.__wq.marks[name]", arg=name, timeout=timeout_ms)
    return page.evaluate("(name) => window.__wq.marks[name]", name)


def _breakdown(page, mark: dict) -> tuple[float, float, float]:
    """Where the time of one measured event went, from the in-page websocket log: (start to the
    first event sent, that send to the last frame received before the result was in the DOM
    (the server's work plus loopback), that frame to the painted result)."""
    log = page.evaluate("() => window.__wq.ws")
    sent = min((e["t"] for e in log if e["k"] == "out" and e["t"] >= mark["t0"]), default=float("nan"))
    received = max((e["t"] for e in log if e["k"] == "in" and sent <= e["t"] <= mark["dom"]), default=float("nan"))
    return sent - mark["t0"], received - sent, mark["painted"] - received


def _breakdown_line(parts: list[tuple[float, float, float]]) -> str:
    def cell(i: int) -> str:
        values = [p[i] for p in parts]
        return f"{statistics.median(values):.0f} ({_pct(values, 0.95):.0f})"

    return f"of which, p50 (p95): start to event sent {cell(0)} ms, server and loopback {cell(1)} ms, last frame to painted {cell(2)} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=f"sqlite:///{ROOT / 'bench' / 'data' / 'ui.db'}")
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--clients-per-tenant", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--email", default="owner@demo.watheeq.local")
    parser.add_argument("--password", default="watheeq-demo")
    parser.add_argument("--chromium", default=str(CHROMIUM))
    parser.add_argument("--frontend-port", type=int, default=0)
    parser.add_argument("--backend-port", type=int, default=0)
    args = parser.parse_args()

    if args.database_url.startswith("sqlite:///"):
        Path(args.database_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    _prepare(args.database_url, args.calls, args.tenants, args.clients_per_tenant)
    print(f"database ready in {time.perf_counter() - t0:.1f} s: {args.database_url}", flush=True)
    service_lines = _service_times(args.database_url, args.email, args.runs)
    print("service calls (direct, same database):", flush=True)
    print("\n".join(service_lines), flush=True)

    print(machine.speed_line(), flush=True)
    frontend, backend = args.frontend_port or free_port(), args.backend_port or free_port()
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
    print(f"starting the app (production build) on :{frontend} / :{backend}; log {log}", flush=True)
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{frontend}"
    try:
        deadline = time.monotonic() + 900
        while not (answers(base + "/login") and answers(f"http://127.0.0.1:{backend}/ping")):
            if proc.poll() is not None or time.monotonic() > deadline:
                print(f"the app did not start; see {log}", file=sys.stderr)
                return 1
            time.sleep(1)
        return _measure(base, args)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _measure(base: str, args: argparse.Namespace) -> int:
    from playwright.sync_api import sync_playwright

    loads: list[str] = [_load_average()]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base)
        context.add_init_script(INIT_SCRIPT)
        context.set_default_timeout(60_000)
        frames = Frames()

        def new_page():
            page = context.new_page()
            frames.attach(page)
            return page

        page = new_page()
        page.goto("/login")
        page.get_by_test_id("login-email").fill(args.email)
        page.get_by_test_id("login-password").fill(args.password)
        began = time.perf_counter()
        page.get_by_test_id("login-submit").click()
        page.wait_for_function(DASHBOARD_READY, timeout=120_000)
        first_ms = (time.perf_counter() - began) * 1000
        total_calls = page.get_by_test_id("stat-total").inner_text()
        page.close()

        # Dashboard, full load in a new tab: a fresh page state on the server, the login kept in local storage.
        dash, dash_rx, dash_parts = [], [], []
        for _ in range(args.runs):
            page = new_page()
            frames.clear()
            page.goto("/", wait_until="commit")
            _watch(page, "dash", DASHBOARD_READY, "nav")
            page.evaluate("() => window.__wq.check()")
            mark = _mark(page, "dash")
            page.wait_for_timeout(SETTLE_MS)
            dash.append(mark["painted"])
            dash_rx.append(frames.take())
            dash_parts.append(_breakdown(page, mark))
            page.close()
        loads.append(_load_average())

        # Dashboard, in-app navigation from the call history (a new tab, so the dashboard was never loaded in it).
        nav, nav_parts = [], []
        for _ in range(max(3, args.runs // 2)):
            page = new_page()
            page.goto("/calls")
            page.get_by_test_id("calls-table").wait_for()
            page.wait_for_timeout(300)
            _watch(page, "nav", DASHBOARD_READY, "input")
            page.get_by_test_id("nav-nav_dashboard").click()
            mark = _mark(page, "nav")
            nav.append(mark["painted"] - mark["t0"])
            nav_parts.append(_breakdown(page, mark))
            page.close()

        # History: status filter changes, then page changes.
        page = new_page()
        page.goto("/calls")
        page.get_by_test_id("call-row").first.wait_for()
        page.wait_for_timeout(SETTLE_MS)
        changed = """({before}) => {
          const body = document.querySelector('[data-testid=calls-table] tbody');
          const total = document.querySelector('[data-testid=calls-total]');
          return !!(body && total && (body.textContent + '|' + total.textContent) !== before);
        }"""
        snapshot = "() => document.querySelector('[data-testid=calls-table] tbody').textContent + '|' + document.querySelector('[data-testid=calls-total]').textContent"
        filt, filt_rx, filt_parts = [], [], []
        statuses = ["Missed", "Completed", "Any"]
        for i in range(args.runs * len(statuses)):
            page.get_by_test_id("filter-status").click()
            option = page.get_by_role("option", name=statuses[i % len(statuses)], exact=True)
            option.wait_for()
            _watch(page, f"filter{i}", changed, "input", {"before": page.evaluate(snapshot)})
            frames.clear()
            option.click()
            mark = _mark(page, f"filter{i}", 30_000)
            page.wait_for_timeout(SETTLE_MS)
            filt.append(mark["painted"] - mark["t0"])
            filt_rx.append(frames.take())
            filt_parts.append(_breakdown(page, mark))
        paging, paging_rx, paging_parts = [], [], []
        for i in range(args.runs):
            _watch(page, f"page{i}", changed, "input", {"before": page.evaluate(snapshot)})
            frames.clear()
            page.get_by_test_id("page-next").click()
            mark = _mark(page, f"page{i}", 30_000)
            page.wait_for_timeout(SETTLE_MS)
            paging.append(mark["painted"] - mark["t0"])
            paging_rx.append(frames.take())
            paging_parts.append(_breakdown(page, mark))
        _watch(page, "last", changed, "input", {"before": page.evaluate(snapshot)})
        page.get_by_test_id("page-last").click()
        mark = _mark(page, "last", 30_000)
        deep_ms = mark["painted"] - mark["t0"]
        loads.append(_load_average())
        browser.close()

    def bytes_line(samples: list[tuple[int, int, int, int]]) -> str:
        received = [s[0] for s in samples]
        return (
            f"received median {statistics.median(received):,.0f} B (max {max(received):,}) in "
            f"{statistics.median([s[1] for s in samples]):.0f} frames, largest frame {max(s[2] for s in samples):,} B; "
            f"sent median {statistics.median([s[3] for s in samples]):,.0f} B"
        )

    print(f"load average (1/5/15 min) at start, after the dashboard runs, at the end: {' | '.join(loads)}")
    print(f"tenant calls today (dashboard card): {total_calls}")
    print(f"first dashboard after login (cold server): {first_ms:.0f} ms")
    print(f"dashboard full load in a new tab, navigation start to painted: {_summary(dash)} (target < 2000 ms)")
    print(f"  {_breakdown_line(dash_parts)}")
    print(f"  websocket per load: {bytes_line(dash_rx)}")
    print(f"dashboard in-app (sidebar link from /calls), click to painted: {_summary(nav)}")
    print(f"  {_breakdown_line(nav_parts)}")
    print(f"history filter change to the new rows painted: {_summary(filt)} (target < 300 ms)")
    print(f"  {_breakdown_line(filt_parts)}")
    print(f"  websocket per filter change: {bytes_line(filt_rx)}")
    print(f"history page change (next page) to the new rows painted: {_summary(paging)}")
    print(f"  {_breakdown_line(paging_parts)}")
    print(f"  websocket per page change: {bytes_line(paging_rx)}")
    print(f"jump to the last page of the unfiltered history: {deep_ms:.0f} ms")
    ok = _pct(dash, 0.95) < 2000 and _pct(filt, 0.95) < 300
    print("targets met" if ok else "targets NOT met")
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
