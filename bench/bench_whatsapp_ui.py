"""QR latency: from the sidecar writing a new QR to the browser showing it (target p95 < 1.5 s).

The app is started with scripts/run.sh (production build, simulator gateway) on free ports
and a fresh seeded SQLite database; headless Chromium signs in as the demo admin and links
the line. The simulator rotates the code every ``--rotate`` seconds. For every code the
page shows, a MutationObserver stamps the moment the image changed (Date.now()); the image
carries the time the sidecar wrote that code (``data-issued``, from the session row), so
each sample is that difference, on one machine clock.

    .venv/bin/python bench/bench_whatsapp_ui.py [--codes 60] [--rotate 1.0]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, answers, cpu_model, free_port  # noqa: E402

RECORDER = """
() => {
  window.__qr = [];
  const img = () => document.querySelector('[data-testid=wa-qr]');
  let last = null;
  const check = () => {
    const i = img();
    if (i && i.src && i.src !== last) {
      last = i.src;
      window.__qr.push([Date.now(), Number(i.getAttribute('data-issued'))]);
    }
  };
  new MutationObserver(check).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  check();
}
"""




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=60, help="QR codes to measure")
    parser.add_argument("--rotate", type=float, default=1.0, help="seconds between codes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-wa-ui-"))
    frontend, backend = free_port(), free_port()
    env = {
        **os.environ,
        "WATHEEQ_DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
        "WATHEEQ_DATA_DIR": str(work / "data"),
        "WATHEEQ_EXPORT_DIR": str(work / "exports"),
        "WATHEEQ_WHATSAPP_GATEWAY": "simulator",
        "WATHEEQ_FRONTEND_PORT": str(frontend),
        "WATHEEQ_BACKEND_PORT": str(backend),
        "WATHEEQ_SIMULATOR_QR_FIRST_SECONDS": str(args.rotate),
        "WATHEEQ_SIMULATOR_QR_NEXT_SECONDS": str(args.rotate),
        "WATHEEQ_SIMULATOR_QR_CODES": str(args.codes + 10),
        "WATHEEQ_WHATSAPP_MAX_QR_CODES": str(args.codes + 10),
        "WATHEEQ_WHATSAPP_QR_TIMEOUT_SECONDS": str((args.codes + 10) * args.rotate + 60),
    }
    log = work / "run.log"
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    with log.open("w") as out:
        proc = subprocess.Popen(["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        base = f"http://127.0.0.1:{frontend}"
        while not (answers(base + "/login") and answers(f"http://127.0.0.1:{backend}/ping")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the app did not start; see {log}")
            time.sleep(1)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(base_url=base, viewport={"width": 1440, "height": 900})
            page.set_default_timeout(30_000)
            page.goto("/login")
            page.get_by_test_id("login-email").fill("admin@demo.watheeq.local")
            page.get_by_test_id("login-password").fill("watheeq-demo")
            page.get_by_test_id("login-submit").click()
            page.get_by_test_id("page-title").wait_for()
            page.goto("/whatsapp")
            page.get_by_test_id("wa-link").click()
            page.get_by_test_id("wa-qr").wait_for()
            page.evaluate(RECORDER)
            page.wait_for_function(f"() => window.__qr.length >= {args.codes + 1}", timeout=int((args.codes + 10) * args.rotate * 1000 + 30_000))
            samples = page.evaluate("window.__qr")
            browser.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    # The first sample is the code already on screen when the recorder started.
    latencies = sorted((shown - issued) / 1000 for shown, issued in samples[1:] if issued)
    p95 = latencies[max(0, int(round(0.95 * (len(latencies) - 1))))]
    print(
        f"QR latency (sidecar writes the code -> browser shows it), {len(latencies)} codes rotating every {args.rotate} s: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms (target p95 < 1500 ms)"
    )


if __name__ == "__main__":
    main()
