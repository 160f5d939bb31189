"""Softphone timings on loopback: page load → registered, dial → ringing at the callee.

Starts the same stack as the softphone e2e tests (the run command on a seeded temporary
database, the dev PBX, Debian's Chromium, all inside a loopback-only network namespace),
then measures with the softphone's own timeline (window.__watheeqSoftphone):

* page load → registered: a full reload of the dashboard until JsSIP's ``registered``
  (performance.now() at that moment, i.e. since navigation start);
* dial → ringing at the callee: the Call button at agent A until the INVITE has
  reached agent B's phone (its incoming card), and until A hears the 180 Ringing.

    .venv/bin/python bench/bench_softphone.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.softphone import e2e_support as e2e  # noqa: E402

CALLER = ("agent@demo.watheeq.local", "1002")
CALLEE = ("agent2@demo.watheeq.local", "1003")


def _summary(name: str, values: list[float]) -> None:
    ms = sorted(v * 1000 for v in values)
    print(f"{name:<34} n={len(ms):<3} min {ms[0]:7.0f} ms   median {statistics.median(ms):7.0f} ms   max {ms[-1]:7.0f} ms")


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
        try:
            with e2e.chromium(stack) as browser:
                a = e2e.sign_in(browser.new_context(viewport=e2e.VIEWPORT), *CALLER)
                b = e2e.sign_in(browser.new_context(viewport=e2e.VIEWPORT), *CALLEE)
                registered, at_callee, ringback = [], [], []
                for _ in range(args.runs):
                    for phone in (a, b):
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
                _summary("page load -> registered", registered)
                _summary("dial -> incoming at the callee", at_callee)
                _summary("dial -> 180 Ringing at the caller", ringback)
        finally:
            stack.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
