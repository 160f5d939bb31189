"""Fixtures over the PBX lab (dev/pbx_lab/lab.py) for SIP-level tests, benches and the
browser tests: a seeded database, the lab started by scripts/dev_pbx.sh inside a network
namespace with only ``lo``, and the demo firm's domain, DID and SIP passwords.

    with lab_for_tests(tmp_path, ring_seconds=6) as (lab, firm):
        agent = lab.agent("a1", user="1001", domain=firm.domain, password=firm.passwords["1001"], port=5071)
        result = lab.outside_call(to=firm.did, duration=5)

``firm.passwords`` are the seeded extensions' SIP passwords (read through the extension
service, as the softphone gets them). A browser test that already has a namespace from
``e2e_support.start_stack`` passes ``netns=stack.netns.pid`` and ``database_url=stack.db_url``
to :class:`dev.pbx_lab.lab.Lab` instead (with the run command's PBX stopped first, or
``WATHEEQ_DEV_PBX=off``), so its browsers and the lab share one loopback.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dev.pbx_lab import lab as pbx_lab
from tests.browser import unavailable

ROOT = Path(__file__).resolve().parents[2]
DEMO_DID = "+966110000000"
APT_LINE = ("sudo apt-get install kamailio kamailio-websocket-modules kamailio-tls-modules kamailio-sqlite-modules "
            "rtpengine-daemon baresip sox sip-tester")


@dataclass
class Firm:
    domain: str
    did: str
    passwords: dict[str, str]


def skip_unless_lab_can_run() -> None:
    """Skips (fails on CI=true) when the lab's packages or network namespaces are missing."""
    need = pbx_lab.missing_packages()
    if need:
        unavailable(f"the PBX lab needs {' '.join(need)} ({APT_LINE})")
    if os.geteuid() != 0:
        unavailable("unshare --net needs root: the lab's SIP and media must stay on a loopback-only network")
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        unavailable("network namespaces are not available here (unshare --net failed)")


def seed_database(workdir: Path) -> tuple[str, Firm]:
    """A fresh SQLite database with the demo firms, as ``make run`` seeds it."""
    db_url = f"sqlite:///{workdir / 'watheeq.db'}"
    env = {**os.environ, "WATHEEQ_DATABASE_URL": db_url}
    out = ""
    for step in (["migrate"], ["seed-demo", "--tenants", "2", "--clients-per-tenant", "20", "--calls", "0"]):
        done = subprocess.run([sys.executable, "-m", "services.cli", *step], cwd=ROOT, env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise AssertionError(f"services.cli {step[0]} failed:\n{(done.stdout + done.stderr)[-2000:]}")
        out = done.stdout + done.stderr
    passwords = dict(re.findall(r"Al-Waha Law Firm\s+(\d{4})\s+\S+@\S+\s+(\S+)\s*$", out, re.M))
    if not passwords:
        raise AssertionError(f"no SIP passwords in the seed report:\n{out[-2000:]}")
    return db_url, Firm(domain="al-waha-law-firm.pbx.localhost", did=DEMO_DID, passwords=passwords)


class Netns:
    """A network namespace with only ``lo`` up, held by a sleeping process."""

    def __init__(self) -> None:
        from tests.softphone.e2e_support import LoopbackNetns

        self._ns = LoopbackNetns()
        self.pid = self._ns.pid

    def close(self) -> None:
        self._ns.close()


@contextlib.contextmanager
def lab_for_tests(workdir: Path, *, ring_seconds: int = 6) -> Iterator[tuple[pbx_lab.Lab, Firm]]:
    skip_unless_lab_can_run()
    workdir.mkdir(parents=True, exist_ok=True)
    db_url, firm = seed_database(workdir)
    netns = Netns()
    lab = pbx_lab.Lab(workdir / "lab", database_url=db_url, netns=netns.pid, ring_seconds=ring_seconds)
    try:
        lab.start()
        yield lab, firm
    finally:
        try:
            lab.stop()
        finally:
            netns.close()
