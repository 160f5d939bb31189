"""WhatsApp files: inbound messages with 10 % media stored with their files, and a 20 MB PDF
from the agent's upload to the phone.

Run: ``.venv/bin/python bench/bench_whatsapp_media.py`` (SQLite in a temporary folder, the
simulator gateway, the real sidecar in this process). Prints:

- ``inbound``: ``--messages`` messages from clients, every tenth with a file of 100 KB-2 MB
  (distinct random files made up front), handed to one sidecar that holds ``--sessions``
  connected lines; the time until every message is stored and every file downloaded,
  encrypted and recorded (state ``stored``, SHA-256 checked on a sample), as messages per
  second; the process's RSS before and its peak during the run.
- ``send``: a 20 MB PDF posted to ``POST /api/v1/whatsapp/qr/send-file`` (multipart, through
  the real API app) until the simulated phone holds the same bytes (SHA-256), repeated
  ``--sends`` times: each time and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import platform
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-wa-media-"))
os.environ["WATHEEQ_ENV_FILE"] = str(TMP / "none.env")
os.environ["WATHEEQ_DATA_DIR"] = str(TMP / "data")
os.environ["WATHEEQ_DATABASE_URL"] = f"sqlite:///{TMP / 'bench.db'}"
os.environ["WATHEEQ_WHATSAPP_GATEWAY"] = "simulator"
os.environ.setdefault("WATHEEQ_LOG_LEVEL", "WARNING")

from services import security  # noqa: E402

os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())

import sqlalchemy as sa  # noqa: E402
from sqlmodel import SQLModel, select  # noqa: E402

from services import db  # noqa: E402
from services.models import WhatsappMessage, WhatsappSession, WhatsappStatus  # noqa: E402
from services.whatsapp import media  # noqa: E402
from tests.whatsapp.conftest import simulated_sidecar  # noqa: E402
from tests.whatsapp.test_send_crash import _linked  # noqa: E402

DATA = TMP / "data"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _counts(tenant_id: int) -> tuple[int, int]:
    with db.session_scope() as session:
        total = session.execute(sa.select(sa.func.count()).select_from(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id)).scalar_one()
        stored = session.execute(
            sa.select(sa.func.count()).select_from(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.media_state == media.STORED)
        ).scalar_one()
    return total, stored


async def _connected(sidecar, tenant_ids: list[int], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tid in tenant_ids:
            client = sidecar.gateway._clients.get(tid)
            if client is not None and client.state == "pairing":
                await sidecar.gateway.scan(tid, f"+9665{tid:08d}", f"Firm {tid}")
        connected = sum(1 for tid in tenant_ids if (rt := sidecar.tenants.get(tid)) is not None and rt.connected)
        if connected == len(tenant_ids):
            return connected
        await asyncio.sleep(0.2)
    return sum(1 for tid in tenant_ids if (rt := sidecar.tenants.get(tid)) is not None and rt.connected)


async def inbound(messages: int, sessions: int, share: float) -> None:
    from services.models import Tenant, WhatsappDesiredState

    tenant_id, _admin = await _linked(DATA)
    others: list[int] = []
    with db.session_scope() as session:
        for i in range(sessions - 1):
            tenant = Tenant(name=f"Idle firm {i}", slug=f"idle-{i}", region="SA", timezone="Asia/Riyadh")
            session.add(tenant)
            session.flush()
            others.append(tenant.id)
            session.add(WhatsappSession(tenant_id=tenant.id, desired_state=WhatsappDesiredState.CONNECTED, status=WhatsappStatus.CONNECTING))
    files_dir = TMP / "phone"
    files_dir.mkdir()
    rng = random.Random(7)
    with_file = int(messages * share)
    files: list[tuple[Path, int]] = []
    for i in range(with_file):
        size = rng.randint(100_000, 2_000_000)
        path = files_dir / f"doc-{i}.pdf"
        path.write_bytes(b"%PDF-1.4\n" + os.urandom(size - 9))
        files.append((path, size))
    total_bytes = sum(size for _, size in files)

    sidecar = simulated_sidecar(DATA, "bench-media", claim_batch=500, max_sessions=1000, health_interval=1.0)
    task = asyncio.create_task(sidecar.run())
    try:
        connected = await _connected(sidecar, [tenant_id, *others], timeout=180)
        print(f"sidecar holds {len(sidecar.tenants)} lines, {connected} of {sessions} CONNECTED; RSS {rss_mb():.0f} MB")
        every = max(1, round(1 / share)) if share else 0
        params = []
        k = 0
        for n in range(messages):
            p = {"from_phone": f"+9665{n % 5000:08d}", "wa_message_id": f"MEDIA{n:08d}", "body": f"message {n}"}
            if every and n % every == 0 and k < len(files):
                p |= {"message_type": "document", "media_file": str(files[k][0]), "media_mime": "application/pdf"}
                k += 1
            params.append(p)
        rss_before = rss_mb()
        sampler_peak = [rss_before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                sampler_peak[0] = max(sampler_peak[0], rss_mb())

        threading.Thread(target=sample, daemon=True).start()
        t0 = time.perf_counter()
        # As neonize hands each event to its own task on the loop: up to 500 in flight.
        pending: set[asyncio.Future] = set()
        for p in params:
            pending.add(asyncio.ensure_future(sidecar.gateway.deliver(tenant_id, p)))
            if len(pending) >= 500:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)
        handed = time.perf_counter() - t0
        deadline = time.monotonic() + 600
        while True:
            total, stored = await asyncio.to_thread(_counts, tenant_id)
            if (total, stored) == (messages, k) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        stop.set()
        print(
            f"inbound: {messages:,} messages, {k} with a file ({total_bytes / 1e6:.0f} MB, 100 KB-2 MB each), handed over in {handed:.2f} s; "
            f"all stored with their files in {elapsed:.2f} s = {messages / elapsed:,.0f} messages/s ({k / elapsed:.0f} files/s, {total_bytes / 1e6 / elapsed:.0f} MB/s); "
            f"stored {total} messages and {stored} files"
        )
        print(f"  sidecar process RSS: {rss_before:.0f} MB before, peak {sampler_peak[0]:.0f} MB during (sampled every 50 ms; ru_maxrss {peak_rss_mb():.0f} MB)")
        # A sample of files read back through the service and checked against the phone's bytes.
        with db.session_scope() as session:
            rows = session.exec(select(WhatsappMessage).where(WhatsappMessage.tenant_id == tenant_id, WhatsappMessage.media_state == media.STORED).limit(5)).all()
            for row in rows:
                whole = media.open_for(_admin, session=session, tenant_id=tenant_id, message_id=row.id)
                data = b"".join(whole.chunks)
                phone = files_dir / row.media_name
                assert hashlib.sha256(data).hexdigest() == hashlib.sha256(phone.read_bytes()).hexdigest(), row.media_name
        print(f"  {len(rows)} files read back decrypted: SHA-256 equal to the phone's")
    finally:
        sidecar.stopping.set()
        await task


def send(sends: int, size_mb: int) -> None:
    from fastapi.testclient import TestClient

    from services import accounts
    from watheeq_ui.api.app import api

    loop = asyncio.new_event_loop()
    tenant_id, admin = loop.run_until_complete(_linked(DATA))
    sidecar = simulated_sidecar(DATA, "bench-send")
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        task = loop.create_task(sidecar.run())
        ready.set()
        loop.run_until_complete(task)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait()
    deadline = time.monotonic() + 60
    while True:
        with db.session_scope() as session:
            row = session.exec(select(WhatsappSession).where(WhatsappSession.tenant_id == tenant_id)).first()
            if row is not None and row.worker_id == "bench-send" and row.status == WhatsappStatus.CONNECTED:
                break
        if time.monotonic() > deadline:
            raise SystemExit("the sidecar did not connect the line")
        time.sleep(0.05)
    with db.session_scope() as session:
        token = accounts.issue_token(session=session, principal=admin)
    received = DATA / "whatsapp" / "simulator" / "received-media" / f"tenant-{tenant_id}"
    times = []
    with TestClient(api) as http:
        for i in range(sends):
            pdf = b"%PDF-1.4\n" + os.urandom(size_mb * 1024 * 1024 - 9)
            digest = hashlib.sha256(pdf).hexdigest()
            t0 = time.perf_counter()
            r = http.post(
                "/api/v1/whatsapp/qr/send-file",
                headers={"Authorization": f"Bearer {token}"},
                data={"to": "0507778899", "caption": f"court bundle {i}"},
                files={"file": (f"bundle-{i}.pdf", pdf, "application/pdf")},
            )
            assert r.status_code in (200, 201, 202), r.text
            posted = time.perf_counter() - t0
            while not (received / digest).exists() or (received / digest).stat().st_size != len(pdf):
                if time.perf_counter() - t0 > 60:
                    raise SystemExit("the phone did not get the file within 60 s")
                time.sleep(0.005)
            took = time.perf_counter() - t0
            assert hashlib.sha256((received / digest).read_bytes()).hexdigest() == digest
            times.append(took)
            print(f"send: {size_mb} MB PDF, upload answered in {posted:.2f} s, on the phone (same SHA-256) {took:.2f} s after the upload began")
    print(f"send: median {statistics.median(times):.2f} s, max {max(times):.2f} s over {len(times)} sends")
    sidecar.stopping.set()
    thread.join(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["inbound", "send"])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--media-share", type=float, default=0.10)
    parser.add_argument("--sends", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=20)
    args = parser.parse_args()
    logging.getLogger("watheeq").setLevel(logging.WARNING)
    if args.only is not None:
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    if args.only is None:
        # Each part in its own process, on its own database and data folder.
        import subprocess

        for part in ("inbound", "send"):
            subprocess.run([sys.executable, __file__, "--only", part, *sys.argv[1:]], check=True)
        return
    SQLModel.metadata.create_all(db.get_engine())
    if args.only == "inbound":
        asyncio.run(inbound(args.messages, args.sessions, args.media_share))
    else:
        send(args.sends, args.size_mb)


if __name__ == "__main__":
    main()
