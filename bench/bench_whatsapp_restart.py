"""WhatsApp sidecar restart: seconds from SIGKILL of the whole sidecar to the line CONNECTED again.

Run: ``.venv/bin/python bench/bench_whatsapp_restart.py [--rounds 3]`` (SQLite in a temporary
folder, simulator gateway, the default 30 s lease). Two ways of restarting are timed:

- ``stable identity``: ``python -m services.whatsapp.sidecar`` as deployed; the restarted
  sidecar gets its predecessor's identity (host id + slot) and takes its lease back at once;
- ``new id per start``: the sidecar started with a fresh ``--worker-id`` each time, as when the
  id was derived from the pid: it must wait until its predecessor's lease lapses.

Each figure is kill → ``connected_since`` written by the new sidecar (the database's view).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-wa-restart-"))
os.environ["WATHEEQ_ENV_FILE"] = str(TMP / "none.env")
os.environ["WATHEEQ_DATA_DIR"] = str(TMP / "data")
os.environ["WATHEEQ_DATABASE_URL"] = f"sqlite:///{TMP / 'bench.db'}"
os.environ["WATHEEQ_WHATSAPP_GATEWAY"] = "simulator"

from sqlmodel import SQLModel  # noqa: E402

from services import db  # noqa: E402
from services.models import Role, WhatsappSession, WhatsappStatus, utcnow  # noqa: E402
from services.tenancy import tenant_select  # noqa: E402
from services.whatsapp import store  # noqa: E402
from services.whatsapp.simulator import enqueue_command  # noqa: E402
from tests import factories as f  # noqa: E402
from tests.whatsapp.conftest import simulated_sidecar  # noqa: E402


def _row(tenant_id: int) -> WhatsappSession:
    with db.session_scope() as session:
        row = session.exec(tenant_select(WhatsappSession, tenant_id)).one()
        session.expunge(row)
        return row


def _wait(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.02)


async def _link() -> int:
    with db.session_scope() as session:
        tenant = f.make_tenant(session)
        admin = f.principal_of(f.make_user(session, tenant, Role.ADMIN))
        tenant_id = tenant.id
        store.init_session(session=session, tenant_id=tenant_id, actor=admin)
    data = Path(os.environ["WATHEEQ_DATA_DIR"])
    sidecar = simulated_sidecar(data, "bench-linker")
    task = asyncio.create_task(sidecar.run())
    while _row(tenant_id).status != WhatsappStatus.QR_PENDING:
        await asyncio.sleep(0.02)
    enqueue_command(tenant_id, "scan", root=data / "whatsapp" / "simulator", phone="+966501112233")
    while _row(tenant_id).status != WhatsappStatus.CONNECTED:
        await asyncio.sleep(0.02)
    sidecar.stopping.set()
    await task
    return tenant_id


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "WATHEEQ_WHATSAPP_TICK_SECONDS": "0.1", "WATHEEQ_WHATSAPP_LEASE_SECONDS": "30", "WATHEEQ_LOG_LEVEL": "ERROR"}
    return subprocess.Popen(
        [sys.executable, "-m", "services.whatsapp.sidecar", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _round(tenant_id: int, args) -> float:
    proc = _start(args())
    started = utcnow()
    _wait(lambda: (r := _row(tenant_id)).status == WhatsappStatus.CONNECTED and r.connected_since and r.connected_since > started, 60)
    _kill(proc)
    killed_at, killed = utcnow(), time.monotonic()
    proc = _start(args())
    _wait(lambda: (r := _row(tenant_id)).status == WhatsappStatus.CONNECTED and r.connected_since and r.connected_since > killed_at, 60)
    seconds = time.monotonic() - killed
    _kill(proc)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    SQLModel.metadata.create_all(db.get_engine())
    tenant_id = asyncio.run(_link())
    # The linker released its lease cleanly; each round starts from a sidecar that runs.
    results: dict[str, list[float]] = {}
    for label, args in (
        ("stable identity", lambda: []),
        ("new id per start (before)", lambda: ["--worker-id", f"bench:{uuid.uuid4().hex[:8]}"]),
    ):
        results[label] = [_round(tenant_id, args) for _ in range(rounds)]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, lease 30 s, simulator gateway, SQLite")
    for label, values in results.items():
        print(f"SIGKILL -> CONNECTED, {label}: median {statistics.median(values):.2f} s, max {max(values):.2f} s  {[round(v, 2) for v in values]}")


if __name__ == "__main__":
    main()
