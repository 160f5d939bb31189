"""The call ledger's catch-up at scale: 100,000 PBX records into a 1,000,000-call SQLite ledger.

Not a test: prints throughput and per-batch times, then the history and stats figures of the
firm with its legs present.

    .venv/bin/python bench/bench_ledger.py            # 1,000,000 calls (bench_call_center's data set), 100,000 records
    .venv/bin/python bench/bench_ledger.py --quick    # 50,000 calls, 10,000 records

The data set is bench_call_center's (generated once into bench/data/, ~1 min); each run copies
it, so runs do not build on each other. The records are one firm's last 30 days as a UCM
writes them (no SIP Call-ID, so rule 3 of services.pbx.matching does the matching): half are
calls the softphone logged already (same agent's extension, number and start, so they merge
into the row), half calls no browser saw (new rows: missed inbound calls with their client,
and outbound ones); each call has 2 legs, a third of the answered ones a transfer leg too. The
catch-up runs through the reconciler's own path (``FirmWorker.catch_up``: batches of 2,000,
each ``feed.commit_batch`` in one transaction with its watermark), on one thread.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from services import security  # noqa: E402

os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

import bench_call_center  # noqa: E402
from services import db  # noqa: E402
from services.call_center import get_call_history, get_stats  # noqa: E402
from services.models import Call, CallLeg, PbxSettings, SipExtension, utcnow  # noqa: E402
from services.pbx import feed  # noqa: E402
from services.pbx.reconciler import FirmWorker, Reconciler, ReconcilerSettings, tune_sqlite  # noqa: E402
from services.pbx.records import CdrRecord, LegDirection, LegDisposition  # noqa: E402


class ListSource:
    """A PBX whose records are already in memory (the catch-up's own cost is what is timed)."""

    kind = "ucm"

    def __init__(self, records: list[CdrRecord]) -> None:
        self.records = records

    def catch_up(self, after_position: int, *, since: datetime | None = None) -> Iterator[CdrRecord]:
        return (r for r in self.records if r.position > after_position)

    async def live(self):  # pragma: no cover - the bench only catches up
        raise NotImplementedError

    def open_recording(self, name: str):  # pragma: no cover
        raise NotImplementedError


def make_records(engine: sa.Engine, tenant_id: int, target: int, rng: random.Random) -> tuple[list[CdrRecord], int]:
    """``target`` leg records of the firm's last 30 days; returns them and how many calls they are."""
    with Session(engine) as session:
        exts = dict(session.execute(sa.select(SipExtension.user_id, SipExtension.extension).where(SipExtension.tenant_id == tenant_id)).all())
        since = utcnow() - timedelta(days=30)
        logged = session.execute(
            sa.select(Call.agent_user_id, Call.remote_number, Call.started_at, Call.direction)
            .where(Call.tenant_id == tenant_id, Call.started_at >= since, Call.agent_user_id.in_(list(exts)))
            .order_by(Call.started_at)
        ).all()
    ext_list = sorted(exts.values())
    records: list[CdrRecord] = []
    calls = 0
    softphone = iter(rng.sample(logged, min(len(logged), target // 5)))
    span = 30 * 86400
    while len(records) < target:
        calls += 1
        linked = f"ucm-{calls}"
        seen = next(softphone, None) if calls % 2 else None
        if seen is not None:
            ext, number, start = exts[seen.agent_user_id], seen.remote_number, seen.started_at
            direction = LegDirection.INBOUND if seen.direction.value == "INBOUND" else LegDirection.OUTBOUND
        else:
            ext, number = rng.choice(ext_list), f"+9665{rng.randrange(10**8):08d}"
            start = since + timedelta(seconds=rng.randrange(span))
            direction = LegDirection.INBOUND if rng.random() < 0.7 else LegDirection.OUTBOUND
        answered = rng.random() < 0.75
        ring = rng.randint(2, 25)
        talk = rng.randint(10, 600)
        other = rng.choice([e for e in ext_list if e != ext] or ext_list)
        legs = [
            (ext, 0, ring if answered else None, ring + (talk if answered else 0), None),
            (other, 0, None, ring, None),
        ]
        if answered and rng.random() < 0.33:
            legs.append((other, ring + talk, ring + talk + 2, ring + talk + 2 + rng.randint(10, 300), ext))
        for i, (leg_ext, s, a, e, by) in enumerate(legs):
            records.append(
                CdrRecord(
                    position=len(records) + 1, unique_id=f"{linked}.{i}", linked_id=linked, direction=direction,
                    remote_number=number, extension=leg_ext, started_at=start + timedelta(seconds=s),
                    answered_at=start + timedelta(seconds=a) if a is not None else None,
                    ended_at=start + timedelta(seconds=e),
                    disposition=LegDisposition.ANSWERED if a is not None else (LegDisposition.CANCELED if answered else LegDisposition.NO_ANSWER),
                    transferred_by=by,
                )
            )
    # The PBX writes a call's records when it ends: roughly in time order.
    records.sort(key=lambda r: (r.ended_at, r.unique_id))
    records = [CdrRecord(**{**r.__dict__, "position": i + 1}) for i, r in enumerate(records)]
    return records, calls


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def reading_figures(engine: sa.Engine, tenant_id: int) -> None:
    """30-day stats (cold: the first request on a new connection; warm x30) and the history's
    first page, for the firm: the same figures before and after the catch-up (the ledger's
    writes keep the rollups by their triggers)."""
    manager = bench_call_center.load_firms(engine)[0].manager
    month = utcnow() - timedelta(days=30)
    engine.dispose()
    with Session(engine) as session:
        began = time.perf_counter()
        get_stats(session=session, tenant_id=tenant_id, actor=manager, date_from=month)
        session.commit()
        print(f"  stats, last 30 days, cold (new connection): {(time.perf_counter() - began) * 1000:.0f} ms")
        for label, fn in (
            ("stats, last 30 days, warm", lambda: get_stats(session=session, tenant_id=tenant_id, actor=manager, date_from=month)),
            ("history, first page of 50 (with count)", lambda: get_call_history(session=session, tenant_id=tenant_id, actor=manager, page_size=50)),
        ):
            times = []
            for _ in range(30):
                began = time.perf_counter()
                fn()
                session.commit()
                times.append(time.perf_counter() - began)
            print(f"  {label} x30: p50 {p(times, 50) * 1000:.1f} ms, p95 {p(times, 95) * 1000:.1f} ms  (load {os.getloadavg()[0]:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--records", type=int, default=None)
    parser.add_argument("--batch", type=int, default=ReconcilerSettings.catch_up_batch)
    parser.add_argument("--keep", action="store_true", help="keep the ledger file afterwards (for profiling)")
    args = parser.parse_args()
    calls_total = 50_000 if args.quick else 1_000_000
    clients = 1_000 if args.quick else 10_000
    target = args.records or (10_000 if args.quick else 100_000)
    base = bench_call_center.DATA_DIR / f"call_center-10t-{calls_total}c-{clients}cl.db"
    bench_call_center.prepare(base, calls=calls_total, tenants=10, clients_per_tenant=clients).dispose()
    work = bench_call_center.DATA_DIR / f"ledger-work-{calls_total}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{work}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(base) as src, sqlite3.connect(work) as dst:
        src.backup(dst)
    engine = bench_call_center.prepare(work, calls=calls_total, tenants=10, clients_per_tenant=clients)
    engine.dispose()
    tune_sqlite(engine)  # as the reconciler process does
    db.configure(engine)
    tenant_id = 1
    with Session(engine) as session:
        total_calls = session.execute(sa.select(sa.func.count()).select_from(Call)).scalar_one()
        settings = session.execute(sa.select(PbxSettings).where(PbxSettings.tenant_id == tenant_id)).scalar_one()
        settings.cdr_source = "ucm"
        session.commit()
    rng = random.Random(12)
    records, pbx_calls = make_records(engine, tenant_id, target, rng)
    print(f"ledger: {total_calls:,} calls in {work.name}; {len(records):,} PBX records of {pbx_calls:,} calls for firm {tenant_id}")

    print("before the catch-up (no legs):")
    reading_figures(engine, tenant_id)

    reconciler = Reconciler(worker_id="bench", settings=ReconcilerSettings(catch_up_batch=args.batch))
    with db.session_scope() as session:
        [lease] = feed.claim_feeds(session=session, worker_id="bench", lease_seconds=3600)
    worker = FirmWorker(tenant_id=tenant_id, epoch=lease.epoch, reconciler=reconciler)
    worker.source = ListSource(records)
    batch_times: list[float] = []
    commit = worker._commit

    def timed(batch, **kwargs):
        began = time.perf_counter()
        out = commit(batch, **kwargs)
        batch_times.append(time.perf_counter() - began)
        return out

    worker._commit = timed  # type: ignore[method-assign]
    began, cpu = time.perf_counter(), time.process_time()
    read = worker.catch_up(after_loss=False)
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    with Session(engine) as session:
        legs = session.execute(sa.select(sa.func.count()).select_from(CallLeg)).scalar_one()
        linked = session.execute(sa.select(sa.func.count()).select_from(Call).where(Call.pbx_linked_id.is_not(None))).scalar_one()
        after = session.execute(sa.select(sa.func.count()).select_from(Call)).scalar_one()
    assert legs == len(records) and linked == pbx_calls, (legs, linked)
    merged = pbx_calls - (after - total_calls)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, load {os.getloadavg()[0]:.1f}")
    print(f"catch-up: {read:,} records in {elapsed:.1f} s = {read / elapsed:,.0f} records/s (target > 2,000/s)"
          f" {'OK' if read / elapsed > 2000 else 'MISSED'}")
    print(f"  CPU time of this process (Python + SQLite): {cpu:.1f} s = {read / cpu:,.0f} records per CPU-second")
    print(f"  batches of {args.batch}: p50 {p(batch_times, 50) * 1000:.0f} ms, p95 {p(batch_times, 95) * 1000:.0f} ms, max {max(batch_times) * 1000:.0f} ms")
    print(f"  calls: {pbx_calls:,} PBX calls -> {merged:,} merged into softphone rows, {after - total_calls:,} new rows; legs stored {legs:,}")

    # Again: every record read a second time (a restart with a lost watermark) changes nothing.
    with db.session_scope() as session:
        session.execute(sa.update(feed._feed).values(watermark=0))
    began = time.perf_counter()
    worker.catch_up(after_loss=False)
    again = time.perf_counter() - began
    with Session(engine) as session:
        assert session.execute(sa.select(sa.func.count()).select_from(Call)).scalar_one() == after
        assert session.execute(sa.select(sa.func.count()).select_from(CallLeg)).scalar_one() == legs
    print(f"re-reading all {read:,} records (idempotent, nothing changes): {again:.1f} s = {read / again:,.0f} records/s")

    print("after the catch-up (legs present):")
    reading_figures(engine, tenant_id)
    engine.dispose()
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
