"""Call statistics at scale, each figure beside the hand-written SQL doing the same job.

Not a test. Used by bench/bench_call_center.py (SQLite, its 1,000,000-call data set) and run
alone for PostgreSQL (or any SQLite file made by bench_call_center):

    .venv/bin/python bench/bench_stats.py --url postgresql://postgres@127.0.0.1:5432/bench_rollups
    .venv/bin/python bench/bench_stats.py --url sqlite:///bench/data/call_center-10t-1000000c-10000cl.db

An empty PostgreSQL database is migrated and seeded first (services.seed, 10 firms, 1,000,000
calls over the last 30 days: about 10 minutes); a SQLite file made before call_stats_hour
existed gets it (and its triggers) built once.

How each floor is written (docs/PERFORMANCE.md): the statements a person would write for the
same figures from the same tables, sent on the bare DBAPI connection (no SQLAlchemy, no DTOs):

- per agent (with the agent's name): ONE statement, a UNION ALL of the period's whole UTC days
  in call_stats_day, its other whole hours in call_stats_hour, the calls of the partial hours
  at its edges and those calls' answered legs, grouped by agent and joined to "user";
- per hour: ONE statement, the rollups' hours UNION ALL the edge calls by hour;
- and the firm's time zone (one primary-key read), which the service needs to place the period;
- a period of whole hours (today) has no edges: both statements without the edges' parts, as
  the service runs them.
Cold, the floor's time includes opening its new connection, as the service's does.

"raw" is the old floor for reference: one GROUP BY over every call of the period (what the
service did before rollups, and what a query without them costs).

Cold: the first request of a firm on a new connection (the engine's pool disposed: SQLite's
page cache and every statement cache empty; the operating system's file cache stays warm).
Warm: the steady state. There is no other "cold" any more: no request ever sums calls into
the rollups, the triggers have done it when each call was written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services import security  # noqa: E402

os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from services import db  # noqa: E402
from services.call_center import get_stats  # noqa: E402
from services.models import Principal, Role, Tenant, User  # noqa: E402
from services.models.call_stats import CALL_FIGURES  # noqa: E402
from services.models.call_stats_triggers import call_terms, hour_sql, rebuild_sql  # noqa: E402


def p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1]


def report(name: str, service: list[float], floor: list[float], target_p95: float | None, *, raw: list[float] | None = None) -> dict[str, Any]:
    ok = "" if target_p95 is None else f"(target p95 < {target_p95:g} ms: {'ok' if p(service, 95) < target_p95 else 'MISSED'})"
    ratio = statistics.median(service) / statistics.median(floor)
    extra = f"   raw GROUP BY p50 {statistics.median(raw):7.2f} ms" if raw else ""
    print(
        f"{name:<34} service p50 {p(service, 50):7.2f} ms  p95 {p(service, 95):7.2f} ms  {ok}   "
        f"SQL p50 {p(floor, 50):7.2f} ms  p95 {p(floor, 95):7.2f} ms   ratio x{ratio:.2f} (target < 3){extra}",
        flush=True,
    )
    return {"name": name, "p50": p(service, 50), "p95": p(service, 95), "sql_p50": p(floor, 50), "sql_p95": p(floor, 95)}


def _time(fn: Callable[[], Any]) -> float:
    began = time.perf_counter()
    fn()
    return (time.perf_counter() - began) * 1000


def measure(fn: Callable[[], Any], iterations: int) -> list[float]:
    fn()
    return [_time(fn) for _ in range(iterations)]


class Floors:
    """The hand-written statements, in the dialect of ``engine``, on its bare DBAPI connection."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.raw = engine.raw_connection()
        d = self.dialect
        terms = call_terms(d, "c")
        call_cols = ", ".join(terms[name] for name in CALL_FIGURES)
        rollup_cols = ", ".join(CALL_FIGURES)
        zeros = ", ".join("0" for _ in CALL_FIGURES[:-2])
        sums = ", ".join(f"sum(x.{name})" for name in CALL_FIGURES)
        # The calls of the two edges: one index range each (an OR of the two under the firm's
        # condition makes SQLite walk every call of the firm).
        edges = (
            "c.id IN (SELECT id FROM call WHERE tenant_id = ? AND started_at >= ? AND started_at < ?"
            " UNION ALL SELECT id FROM call WHERE tenant_id = ? AND started_at >= ? AND started_at < ?)"
        )
        span = f"agent_key AS agent, {rollup_cols} FROM call_stats_hour WHERE tenant_id = ? AND hour_start >= ? AND hour_start < ?"
        self.per_agent = f"""
SELECT x.agent, u.full_name, {sums} FROM (
  SELECT agent_key AS agent, {rollup_cols} FROM call_stats_day WHERE tenant_id = ? AND day_start >= ? AND day_start < ?
  UNION ALL SELECT {span}
  UNION ALL SELECT {span}
  UNION ALL
  SELECT COALESCE(c.agent_user_id, 0), {call_cols} FROM call c WHERE {edges}
  UNION ALL
  SELECT COALESCE(l.agent_user_id, 0), {zeros}, l.talk_seconds, 1 FROM call_leg l
  WHERE l.tenant_id = ? AND l.answered_at IS NOT NULL AND l.call_id IN (SELECT c.id FROM call c WHERE {edges})
) AS x LEFT JOIN "user" u ON u.id = x.agent
GROUP BY x.agent, u.full_name"""
        self.per_hour = f"""
SELECT hour_start, sum(total), sum(answered), sum(missed) FROM call_stats_hour
WHERE tenant_id = ? AND hour_start >= ? AND hour_start < ? GROUP BY hour_start
UNION ALL
SELECT {hour_sql(d, 'c.started_at')}, count(*), sum({terms['answered']}), sum({terms['missed']}) FROM call c
WHERE {edges} GROUP BY {hour_sql(d, 'c.started_at')}"""
        # A period of whole hours (today) has no edges: the same statements without their parts.
        self.per_agent_whole = self.per_agent.split("  UNION ALL\n  SELECT COALESCE(c.agent_user_id, 0)")[0] + ") AS x LEFT JOIN \"user\" u ON u.id = x.agent\nGROUP BY x.agent, u.full_name"
        self.per_hour_whole = self.per_hour.split("UNION ALL")[0]
        self.raw_scan = f"""
SELECT c.agent_user_id, u.full_name, {', '.join(f'sum({terms[n]})' for n in CALL_FIGURES)}
FROM call c LEFT JOIN "user" u ON u.id = c.agent_user_id
WHERE c.tenant_id = ? AND c.started_at >= ? AND c.started_at < ? GROUP BY c.agent_user_id, u.full_name"""
        # The firm's zone, which says where its days and hours begin (the service reads it too).
        self.timezone = "SELECT timezone FROM tenant WHERE id = ?"
        if d != "sqlite":
            self.per_agent, self.per_hour, self.raw_scan, self.timezone, self.per_agent_whole, self.per_hour_whole = (
                s.replace("?", "%s")
                for s in (self.per_agent, self.per_hour, self.raw_scan, self.timezone, self.per_agent_whole, self.per_hour_whole)
            )

    def reconnect(self) -> None:
        """A new connection, as the service's first request after engine.dispose() gets."""
        self.raw.close()
        self.engine.dispose()
        self.raw = self.engine.raw_connection()

    def _t(self, value: datetime) -> Any:
        utc = value.astimezone(timezone.utc).replace(tzinfo=None)
        return utc.strftime("%Y-%m-%d %H:%M:%S.%f") if self.dialect == "sqlite" else utc

    def _run(self, statement: str, params: tuple[Any, ...]) -> list[Any]:
        cur = self.raw.cursor()
        cur.execute(statement, params)
        rows = cur.fetchall()
        cur.close()
        self.raw.commit()
        return rows

    def stats(self, tenant_id: int, start: datetime, end: datetime) -> tuple[list[Any], list[Any]]:
        lo = start.replace(minute=0, second=0, microsecond=0)
        lo = lo + timedelta(hours=1) if lo < start else lo
        hi = end.replace(minute=0, second=0, microsecond=0)
        t = self._t
        edges = (tenant_id, t(start), t(lo), tenant_id, t(hi), t(end))
        span = (tenant_id, t(lo), t(hi))
        dlo = lo.replace(hour=0) + (timedelta(days=1) if lo.hour else timedelta(0))
        dhi = hi.replace(hour=0)
        if dlo >= dhi:
            dlo = dhi = hi
        days = ((tenant_id, t(dlo), t(dhi)), (tenant_id, t(lo), t(dlo)), (tenant_id, t(dhi), t(hi)))
        self._run(self.timezone, (tenant_id,))
        if start == lo and end == hi:
            agents = self._run(self.per_agent_whole, (*days[0], *days[1], *days[2]))
            hours = self._run(self.per_hour_whole, span)
        else:
            agents = self._run(self.per_agent, (*days[0], *days[1], *days[2], *edges, tenant_id, *edges))
            hours = self._run(self.per_hour, (*span, *edges))
        return agents, hours

    def scan(self, tenant_id: int, start: datetime, end: datetime) -> list[Any]:
        return self._run(self.raw_scan, (tenant_id, self._t(start), self._t(end)))


def ensure_rollups(engine: sa.Engine) -> None:
    """A data file made before the rollup tables: build them (create_all made them, empty)."""
    with engine.begin() as conn:
        has_calls = conn.execute(sa.text("SELECT 1 FROM call LIMIT 1")).first() is not None
        empty = [t for t in ("call_stats_hour", "call_stats_day") if conn.execute(sa.text(f"SELECT 1 FROM {t} LIMIT 1")).first() is None]
        if has_calls and empty:
            print("building call_stats_hour and call_stats_day from the calls ...", flush=True)
            began = time.perf_counter()
            conn.exec_driver_sql("DELETE FROM call_stats_hour")
            conn.exec_driver_sql("DELETE FROM call_stats_day")
            for statement in rebuild_sql(conn.dialect.name):
                conn.exec_driver_sql(statement)
            print(f"built in {time.perf_counter() - began:.1f} s", flush=True)


def managers(engine: sa.Engine) -> list[Principal]:
    with Session(engine) as session:
        out = []
        for tenant_id in session.execute(sa.select(Tenant.id).order_by(Tenant.id)).scalars():
            users = session.execute(sa.select(User.id, User.role).where(User.tenant_id == tenant_id).order_by(User.id)).all()
            manager = next(u for u in users if u.role in (Role.MANAGER, Role.ADMIN, Role.OWNER))
            out.append(Principal(user_id=manager.id, tenant_id=tenant_id, role=manager.role))
        return out


def run(engine: sa.Engine, firms: list[Principal], *, iterations: int, cold_iterations: int, rng: Any) -> list[dict[str, Any]]:
    floors = Floors(engine)
    now = datetime.now(timezone.utc)
    month_ago = now - timedelta(days=30)
    results = []

    def service(actor: Principal, **kw: Any) -> Any:
        with Session(engine) as session:
            result = get_stats(session=session, tenant_id=actor.tenant_id, actor=actor, **kw)
            session.commit()
            return result

    today = service(firms[0])
    today_start, today_end = today.date_from, today.date_to
    results.append(report(
        "stats today",
        measure(lambda: service(rng.choice(firms)), iterations),
        measure(lambda: floors.stats(rng.choice(firms).tenant_id, today_start, today_end), iterations),
        10,
        raw=measure(lambda: floors.scan(rng.choice(firms).tenant_id, today_start, today_end), max(10, iterations // 4)),
    ))

    def month(actor: Principal) -> Any:
        return service(actor, date_from=month_ago, date_to=now)

    cold, cold_floor = [], []
    for i in range(cold_iterations):
        actor = firms[i % len(firms)]
        engine.dispose()
        cold.append(_time(lambda: month(actor)))
        cold_floor.append(_time(lambda: (floors.reconnect(), floors.stats(actor.tenant_id, month_ago, now))))
    raw_month = measure(lambda: floors.scan(rng.choice(firms).tenant_id, month_ago, now), max(10, iterations // 10))
    results.append(report("stats 30 days, cold (new connection)", cold, cold_floor, 10, raw=raw_month))
    results.append(report(
        "stats 30 days, warm",
        measure(lambda: month(rng.choice(firms)), iterations),
        measure(lambda: floors.stats(rng.choice(firms).tenant_id, month_ago, now), iterations),
        10,
        raw=raw_month,
    ))
    # Another service-level threshold: the 20 s the rollups count does not answer it, so the
    # service counts it from the calls; its floor adds that count to the same statements.
    results.append(report(
        "stats 30 days, threshold 30 s",
        measure(lambda: service(rng.choice(firms), date_from=month_ago, date_to=now, service_level_threshold_s=30), max(10, iterations // 10)),
        measure(lambda: (lambda f: (floors.stats(f, month_ago, now), floors.scan(f, month_ago, now)))(rng.choice(firms).tenant_id), max(10, iterations // 10)),
        None,
    ))
    floors.raw.close()
    return results


def main() -> None:
    import random

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--clients-per-tenant", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--cold-iterations", type=int, default=30)
    args = parser.parse_args()
    engine = db.create_db_engine(args.url)
    version = ""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            empty = not sa.inspect(conn).has_table("call")
        else:
            version = conn.exec_driver_sql("SELECT sqlite_version()").scalar_one()
            empty = False
    if engine.dialect.name == "sqlite":
        from sqlmodel import SQLModel

        import services.models  # noqa: F401

        SQLModel.metadata.create_all(engine)  # call_stats_hour and its triggers, on a file made before them
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, {engine.dialect.name} {version}, load {open('/proc/loadavg').read().strip()}", flush=True)
    if empty:
        from services import migrate, seed

        migrate.upgrade(args.url)
        print(f"seeding {args.calls:,} calls, {args.tenants} firms ...", flush=True)
        began = time.perf_counter()
        with Session(engine) as session:
            seed.seed_demo(session=session, calls=args.calls, tenants=args.tenants, clients_per_tenant=args.clients_per_tenant)
            session.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
        print(f"seeded in {time.perf_counter() - began:.0f} s (rollups written by the triggers as the calls went in)", flush=True)
    ensure_rollups(engine)
    firms = managers(engine)
    run(engine, firms, iterations=args.iterations, cold_iterations=args.cold_iterations, rng=random.Random(7))
    print(f"load {open('/proc/loadavg').read().strip()}", flush=True)


if __name__ == "__main__":
    main()
