"""WhatsApp figures: inbound ingestion rate and one sidecar holding 200 simulated sessions.

Run: ``.venv/bin/python bench/bench_whatsapp.py`` (SQLite in a temporary folder). Prints:
- sustained ingestion through the neonize gateway's handler (neonize MessageEv objects →
  dispatch → sidecar group-commit writer → SQLite), matching senders against 100,000 clients;
- a burst of 10,000 messages handed over at once: how many were stored;
- RSS and reconcile tick time of one sidecar holding 200 connected simulated sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-wa-"))
os.environ["WATHEEQ_ENV_FILE"] = str(TMP / "none.env")
os.environ["WATHEEQ_DATA_DIR"] = str(TMP / "data")
os.environ["WATHEEQ_DATABASE_URL"] = f"sqlite:///{TMP / 'bench.db'}"

import sqlalchemy as sa  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from services import db  # noqa: E402
from services.models import Client, Tenant, WhatsappDesiredState, WhatsappMessage, WhatsappSession, WhatsappStatus  # noqa: E402
from services.whatsapp.runtime import HeldTenant  # noqa: E402
from services.whatsapp.sidecar import Settings, Sidecar  # noqa: E402
from services.whatsapp import store  # noqa: E402

N_CLIENTS = 100_000


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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(n_tenants: int) -> list[int]:
    engine = db.get_engine()
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        ids = []
        for i in range(n_tenants):
            ids.append(conn.execute(sa.insert(Tenant.__table__).values(name=f"Firm {i}", slug=f"firm-{i}", region="SA", timezone="Asia/Riyadh", created_at=datetime.now(timezone.utc))).inserted_primary_key[0])
        now = datetime.now(timezone.utc)
        conn.execute(
            sa.insert(Client.__table__),
            [{"tenant_id": ids[0], "name": f"Client {i}", "phone": f"05{i:08d}", "phone_e164": f"+9665{i:08d}", "created_at": now} for i in range(N_CLIENTS)],
        )
    return ids


async def ingestion(tenant_id: int) -> None:
    from neonize.aioze.events import MessageEv
    from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
    from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

    from services.whatsapp.neonize_gateway import NeonizeGateway

    sidecar = Sidecar(worker_id="bench", settings=Settings(), gateway_factory=lambda sink: NeonizeGateway(sink, database_url="sqlite:///x.db", folder=TMP))
    with db.session_scope() as session:
        session.add(WhatsappSession(tenant_id=tenant_id, desired_state=WhatsappDesiredState.CONNECTED, status=WhatsappStatus.CONNECTED))
    with db.session_scope() as session:
        (lease,) = store.restore_active_sessions(session=session, worker_id="bench", lease_seconds=300)
    sidecar.tenants[tenant_id] = HeldTenant(lease=lease)
    sidecar._writer.start()
    gateway = sidecar.gateway

    def event(n: int) -> MessageEv:
        user = f"9665{(n * 7919) % N_CLIENTS:08d}" if n % 4 else f"9665{90000000 + n % 9999999:08d}"  # 1 in 4 unknown senders
        jid = JID(User=user, Server="s.whatsapp.net")
        source = MessageSource(Chat=jid, Sender=jid, IsFromMe=False)
        info = MessageInfo(MessageSource=source, ID=f"BENCH{n:010d}", Pushname="Sender", Timestamp=1767225600 + n)
        return MessageEv(Info=info, Message=Message(conversation=f"message {n}"))

    async def feed(start: int, count: int, concurrency: int) -> None:
        # neonize schedules each handler as its own task on the loop (run_coroutine_threadsafe).
        pending: set[asyncio.Task[None]] = set()
        for n in range(start, start + count):
            pending.add(asyncio.ensure_future(gateway.dispatch(tenant_id, None, event(n))))
            if len(pending) >= concurrency:
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        await asyncio.gather(*pending)

    sustained = 30_000
    t0 = time.perf_counter()
    await feed(0, sustained, concurrency=500)
    elapsed = time.perf_counter() - t0
    print(f"ingestion sustained: {sustained} messages in {elapsed:.2f} s = {sustained / elapsed:,.0f} msg/s (100,000 clients, SQLite)")

    burst = 10_000
    t0 = time.perf_counter()
    await asyncio.gather(*(gateway.dispatch(tenant_id, None, event(n)) for n in range(sustained, sustained + burst)))
    elapsed = time.perf_counter() - t0
    with db.session_scope() as session:
        stored = session.exec(sa.select(sa.func.count()).select_from(WhatsappMessage)).one()[0]
        matched = session.exec(sa.select(sa.func.count()).select_from(WhatsappMessage).where(WhatsappMessage.client_id.is_not(None))).one()[0]
    print(f"ingestion burst: {burst} handed over at once, stored in {elapsed:.2f} s; total stored {stored} of {sustained + burst} (lost {sustained + burst - stored}); matched to a client {matched}")
    await sidecar.shutdown()
    # The next part measures exactly 200 sessions: this firm's line must not be claimed too.
    with db.session_scope() as session:
        session.execute(sa.delete(WhatsappSession).where(WhatsappSession.tenant_id == tenant_id))


async def many_sessions(tenant_ids: list[int]) -> None:
    from services.whatsapp.simulator import SimulatorGateway

    with db.session_scope() as session:
        for tid in tenant_ids:
            session.add(WhatsappSession(tenant_id=tid, desired_state=WhatsappDesiredState.CONNECTED, status=WhatsappStatus.CONNECTING))
    # A lease of 6 s renews every 2 s: one tick in ten writes, three times production's share.
    settings = Settings(tick_seconds=0.2, lease_seconds=6.0, claim_batch=200, max_sessions=500, health_interval=5.0)
    sidecar = Sidecar(
        worker_id="hold-200",
        settings=settings,
        gateway_factory=lambda sink: SimulatorGateway(sink, root=TMP / "sim", qr_first_seconds=3600, poll_interval=0.1),
    )
    ticks: list[tuple[float, bool]] = []
    measuring = False
    untimed = sidecar.tick

    async def timed_tick() -> None:
        renewed_before = sidecar._renewed_at
        t0 = time.perf_counter()
        await untimed()
        if measuring:
            ticks.append(((time.perf_counter() - t0) * 1000, sidecar._renewed_at != renewed_before))

    sidecar.tick = timed_tick  # type: ignore[method-assign]
    task = asyncio.create_task(sidecar.run())
    t0 = time.monotonic()
    # Pair every tenant through the simulated phone, then measure steady state.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for tid in tenant_ids:
            client = sidecar.gateway._clients.get(tid)  # type: ignore[attr-defined]
            if client is not None and client.state == "pairing":
                await sidecar.gateway.scan(tid, f"+9665{tid:08d}", f"Firm {tid}")  # type: ignore[attr-defined]
        if sum(1 for rt in sidecar.tenants.values() if rt.connected) == len(tenant_ids):
            break
        await asyncio.sleep(0.2)
    connected = sum(1 for rt in sidecar.tenants.values() if rt.connected)
    print(f"sidecar: holds {len(sidecar.tenants)} sessions, {connected} of {len(tenant_ids)} CONNECTED after {time.monotonic() - t0:.1f} s")
    measuring = True
    await asyncio.sleep(30)
    measuring = False

    def summary(values: list[float]) -> str:
        values = sorted(values)
        if not values:
            return "none"
        p95 = values[max(0, int(len(values) * 0.95) - 1)]
        return f"n={len(values)} median {statistics.median(values):.1f} ms, p95 {p95:.1f} ms, max {values[-1]:.1f} ms"

    print(f"sidecar with {connected} connected simulated sessions: RSS {rss_mb():.0f} MB")
    print(f"  reconcile tick, all: {summary([ms for ms, _ in ticks])}")
    print(f"  reconcile tick, read-only: {summary([ms for ms, renewed in ticks if not renewed])}")
    print(f"  reconcile tick, renewing leases: {summary([ms for ms, renewed in ticks if renewed])}")
    sidecar.stopping.set()
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["ingestion", "sessions"], help="run one part")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the sessions part here")
    args = parser.parse_args()
    logging.getLogger("watheeq.whatsapp").setLevel(logging.WARNING)
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    ids = setup(201)
    if args.only != "sessions":
        asyncio.run(ingestion(ids[0]))
    if args.only != "ingestion":
        if args.profile:
            import cProfile

            cProfile.runctx("asyncio.run(many_sessions(ids[1:]))", globals(), {"ids": ids}, str(args.profile))
        else:
            asyncio.run(many_sessions(ids[1:]))


if __name__ == "__main__":
    main()
