"""Wallboard fan-out in one backend worker: 200 agents changing state every 10 s on average
(20 changes a second), 20 wallboards of the firm open; change → fresh board on every
wallboard, p50/p95/max; the worker's CPU; database queries a second while the wallboards
sit idle (no polling: expect 0).

Each wallboard is what WallboardState.watch does: a LiveWaiter woken by the firm's changes,
then the board through the worker's SharedRead (one read per change shared by the firm's
wallboards). The time is from the commit of a change to the moment a wallboard holds a board
read after it.

    .venv/bin/python bench/bench_wallboard.py [--agents 200] [--wallboards 20] [--seconds 20] [--unshared]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from services import db, presence  # noqa: E402
from services.models import AgentStatus, AwayReason, Role  # noqa: E402
from tests.factories import make_firm, make_user, principal_of  # noqa: E402
from watheeq_ui.pages.wallboard import TOPICS, _fetch  # noqa: E402
from watheeq_ui.state.live_watch import LiveWaiter, SharedRead  # noqa: E402


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


async def main(agents: int, wallboards: int, seconds: float, unshared: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-wallboard-"))
    engine = db.create_db_engine(f"sqlite:///{work / 'bench.db'}")
    SQLModel.metadata.create_all(engine)
    db.configure(engine)
    with Session(engine, expire_on_commit=False) as session:
        firm = make_firm(session)
        people = [principal_of(make_user(session, firm.tenant, Role.AGENT)) for _ in range(agents)]
        for p in people:
            presence.report_phone(session=session, tenant_id=firm.tenant.id, actor=p, event=presence.PhoneEvent.REGISTERED)
        session.commit()
    manager = firm.manager
    boards = SharedRead(TOPICS, _fetch)
    committed: dict[int, float] = {}  # version -> commit time
    latencies: list[float] = []
    reads = [0]
    queries = [0]

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _count(*_args) -> None:
        queries[0] += 1

    stop = asyncio.Event()

    async def wallboard() -> None:
        waiter = LiveWaiter(firm.tenant.id, TOPICS)
        seen = boards.version(firm.tenant.id)
        try:
            while not stop.is_set():
                if not await waiter.wait(1.0):
                    continue  # the clock tick: no database
                if unshared:
                    version = boards.version(firm.tenant.id)
                    await asyncio.to_thread(_fetch, manager)
                else:
                    version, _ = await asyncio.to_thread(boards.get, manager)
                now = time.monotonic()
                for v in range(seen + 1, version + 1):
                    if v in committed:
                        latencies.append(now - committed[v])
                seen = max(seen, version)
        finally:
            waiter.close()

    def driver() -> None:
        rng = random.Random(13)
        interval = 10.0 / agents  # each agent every 10 s on average
        end = next_at = time.monotonic()
        end += seconds
        while time.monotonic() < end:
            who = rng.choice(people)
            with Session(engine) as session:
                state = presence.list_states(session=session, tenant_id=firm.tenant.id, actor=who)[0].status
                target = AgentStatus.AVAILABLE if state == AgentStatus.AWAY else AgentStatus.AWAY
                presence.set_own_state(session=session, tenant_id=firm.tenant.id, actor=who, status=target,
                                       reason=AwayReason.BREAK if target == AgentStatus.AWAY else None)
                # The version this commit's announcement will get (announced on commit).
                version = boards.version(firm.tenant.id) + 1
                committed[version] = time.monotonic()
                session.commit()
            reads[0] += 1
            # Poisson arrivals at the target rate, whatever each change took.
            next_at += rng.expovariate(1 / interval)
            time.sleep(max(0.0, next_at - time.monotonic()))

    tasks = [asyncio.create_task(wallboard()) for _ in range(wallboards)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.to_thread(driver)
    await asyncio.sleep(1.5)
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    q0 = queries[0]
    await asyncio.sleep(5.0)
    idle_qps = (queries[0] - q0) / 5.0
    stop.set()
    await asyncio.gather(*tasks)
    print(f"agents {agents}, wallboards {wallboards}, changes {reads[0]} in {seconds:.0f} s ({reads[0] / seconds:.1f}/s)")
    print(f"change -> fresh board on a wallboard: n={len(latencies)} p50 {statistics.median(latencies) * 1000:.1f} ms"
          f"  p95 {_pct(latencies, 0.95) * 1000:.1f} ms  max {max(latencies) * 1000:.1f} ms")
    print(f"worker CPU {cpu / wall * 100:.0f} % of one core (changes, board reads and fan-out, one process)")
    print(f"database queries while the wallboards sit idle: {idle_qps:.1f}/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--wallboards", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--unshared", action="store_true", help="each wallboard reads the board itself (for comparison)")
    args = parser.parse_args()
    asyncio.run(main(args.agents, args.wallboards, args.seconds, args.unshared))
