"""WhatsApp sends through sidecar crashes: duplicates and losses over repeated SIGKILLs.

Run: ``.venv/bin/python bench/bench_whatsapp_crash.py [--messages 6000] [--kills 15]
[--postgres URL] [--mode client-ids|neonize-like|both]``. SQLite in a temporary folder by
default; ``--postgres`` runs on that database instead, after DROPPING its public schema (give it
a database of its own).

A firm's line is linked on the simulator gateway and a burst of messages is queued. A real
sidecar worker process (``python -m services.whatsapp.sidecar --worker``) sends them and is
SIGKILLed ``--kills`` times in the middle, then restarted at once as its supervisor would:
two kills in three at a random moment from outside, one in three by the simulator itself right
after WhatsApp took a message and before the sidecar heard so (the window in which a blind
retry sends twice). The simulator appends every delivery to a log that survives the crashes:
that is what the firm's clients received, counted per message.

Modes: ``client-ids`` (the id is chosen before the send; a restarted sidecar asks WhatsApp's
record, or re-sends under the same id) and ``neonize-like`` (neonize 0.5.2: no id before the
send, WhatsApp cannot be asked; a cut send becomes UNCERTAIN for a person).

Prints per mode: kills, sends cut in flight (found SENDING after a kill), of those already
delivered (each one a duplicate under the old blind retry), duplicates delivered, messages
lost, UNCERTAIN, same-id re-sends that WhatsApp absorbed, and the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-wa-crash-"))
os.environ["WATHEEQ_ENV_FILE"] = str(TMP / "none.env")

import sqlalchemy as sa  # noqa: E402

from services import db, migrate, security  # noqa: E402
from services.models import MessageStatus, Principal, Role, Tenant, User, WhatsappDesiredState, WhatsappMessage, WhatsappSend, WhatsappSession, WhatsappStatus  # noqa: E402
from services.tenancy import owned_by  # noqa: E402
from services.whatsapp import store  # noqa: E402
from services.whatsapp.simulator import enqueue_command  # noqa: E402
from tests.whatsapp.sidecar_support import (  # noqa: E402
    UNSETTLED,
    read_log,
    reap,
    sent_log,
    settled,
    start_worker,
    status_counts,
    statuses_by_body,
    wait_until,
)

os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())
FIRM_PHONE = "+966500000777"
DEVICE_JID = "966500000777:3@s.whatsapp.net"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def prepare(url: str, data: Path, messages: int) -> int:
    """A fresh schema, a firm with its line linked on the simulator, and the burst queued."""
    if url.startswith("postgres"):
        engine = db.create_db_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    migrate.upgrade(db.normalise_url(url))
    db.configure(db.create_db_engine(url))
    with db.session_scope() as session:
        tenant = Tenant(name="Crash Firm", slug=f"crash-{time.time_ns()}")
        session.add(tenant)
        session.flush()
        session.add(
            WhatsappSession(
                tenant_id=tenant.id, desired_state=WhatsappDesiredState.CONNECTED, status=WhatsappStatus.CONNECTED, device_jid=DEVICE_JID, phone_number=FIRM_PHONE
            )
        )
        tenant_id = tenant.id
        # An agent who queues the burst; "!" is no password hash, so nobody can sign in as them.
        agent = User(tenant_id=tenant_id, email="agent@crash.example", role=Role.AGENT, password_hash="!")
        session.add(agent)
        session.flush()
        agent_id = agent.id
    devices = data / "whatsapp" / "simulator" / "devices"
    devices.mkdir(parents=True, exist_ok=True)
    (devices / f"tenant-{tenant_id}.json").write_text(json.dumps({"jid": DEVICE_JID, "phone": FIRM_PHONE, "push_name": "Crash Firm"}))
    actor = Principal(user_id=agent_id, tenant_id=tenant_id, role=Role.AGENT)
    numbers = [f"05010000{i:02d}" for i in range(20)]
    with db.session_scope() as session:
        for i in range(messages):
            store.send_message(session=session, tenant_id=tenant_id, actor=actor, data=WhatsappSend(to=numbers[i % len(numbers)], body=f"burst message {i}"))
    return tenant_id


def in_flight(tenant_id: int) -> list[str]:
    """Bodies of the messages found SENDING: sends a kill cut between hand-over and answer."""
    with db.session_scope() as session:
        return list(
            session.execute(
                sa.select(WhatsappMessage.body).where(owned_by(WhatsappMessage, tenant_id), WhatsappMessage.status == MessageStatus.SENDING)
            ).scalars()
        )


def run(url: str, backend: str, messages: int, kills: int, client_ids: bool, seed: int) -> None:
    data = TMP / f"data-{backend}-{'ids' if client_ids else 'noids'}"
    tenant_id = prepare(url, data, messages)
    log = sent_log(data, tenant_id)
    rng = random.Random(seed)
    cut = cut_delivered = window_kills = 0
    started = time.monotonic()
    for k in range(kills):
        before = settled(tenant_id)
        in_window = k % 3 == 2
        if in_window:
            enqueue_command(tenant_id, "crash_after_sends", root=data / "whatsapp" / "simulator", count=rng.randint(20, 200))
        worker = start_worker(url, data, client_ids=client_ids, worker_id="crash-bench")
        try:
            if in_window:
                wait_until(lambda: worker.poll() is not None, 120)
                window_kills += worker.returncode == -signal.SIGKILL
            else:
                wait_until(lambda: settled(tenant_id) > before, 120)
                time.sleep(rng.uniform(0.05, 0.6))
                worker.send_signal(signal.SIGKILL)
                worker.wait(30)
        finally:
            reap(worker)
        flying = in_flight(tenant_id)
        delivered_bodies = {r["body"] for r in read_log(log)}
        cut += len(flying)
        cut_delivered += sum(1 for b in flying if b in delivered_bodies)
    left_at_last_kill = messages - settled(tenant_id)
    worker = start_worker(url, data, client_ids=client_ids, worker_id="crash-bench")
    try:
        wait_until(lambda: not (UNSETTLED & set(status_counts(tenant_id))), 600)
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    finally:
        reap(worker)
    elapsed = time.monotonic() - started
    deliveries = Counter(r["body"] for r in read_log(log))
    resent_absorbed = len(read_log(log.with_name(f"tenant-{tenant_id}.resent.jsonl")))
    final = statuses_by_body(tenant_id)
    duplicates = sum(n - 1 for n in deliveries.values() if n > 1)
    uncertain = [b for b, s in final.items() if s == MessageStatus.UNCERTAIN]
    lost = [b for b, s in final.items() if (s == MessageStatus.SENT and deliveries[b] != 1) or s not in (MessageStatus.SENT, MessageStatus.UNCERTAIN)]
    print(
        f"{backend:10} {'client-ids' if client_ids else 'neonize-like':12} messages {messages}, SIGKILLs {kills} "
        f"({kills - window_kills} at random, {window_kills} right after a delivery), {left_at_last_kill} still unsent at the last kill"
    )
    print(f"    sends cut in flight {cut}, of them already delivered {cut_delivered} (duplicates under a blind retry)")
    print(
        f"    DUPLICATES delivered {duplicates}, LOST {len(lost)}, UNCERTAIN {len(uncertain)} "
        f"(delivered {sum(deliveries[b] for b in uncertain)}), same-id re-sends absorbed by WhatsApp {resent_absorbed}; "
        f"{messages} in {elapsed:.1f} s incl. restarts = {messages / elapsed:,.0f} msg/s"
    )
    db.configure(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--kills", type=int, default=15)
    parser.add_argument("--postgres", help="PostgreSQL URL of a database of the benchmark's own (its schema is dropped)")
    parser.add_argument("--mode", choices=["client-ids", "neonize-like", "both"], default="both")
    parser.add_argument("--seed", type=int, default=811)
    args = parser.parse_args()
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    backend, url = ("postgresql", args.postgres) if args.postgres else ("sqlite", f"sqlite:///{TMP / 'crash.db'}")
    modes = [True, False] if args.mode == "both" else [args.mode == "client-ids"]
    for i, client_ids in enumerate(modes):
        if backend == "sqlite":
            url = f"sqlite:///{TMP / f'crash-{i}.db'}"
        run(url, backend, args.messages, args.kills, client_ids, args.seed + i)


if __name__ == "__main__":
    main()
