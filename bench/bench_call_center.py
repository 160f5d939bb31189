"""Call-center services at scale (SQLite or PostgreSQL): history pages, number search, stats, logging.

Not a test: prints p50 / p95 (ms) or throughput for each service call, and for a
hand-written SQL statement doing the same job, with the ratio between them (the
service layer's overhead: ORM, DTOs, validation, and for history the total count).

    .venv/bin/python bench/bench_call_center.py             # 10 firms, 1,000,000 calls, 100,000 clients
    .venv/bin/python bench/bench_call_center.py --quick     # 10 firms, 50,000 calls, 10,000 clients
    .venv/bin/python bench/bench_call_center.py --database-url postgresql://postgres@127.0.0.1:5432/bench_calls
    .venv/bin/python bench/bench_call_center.py --parts stats,log   # some parts only (number-search, history, stats, log)

The data set is generated once with ``services.seed`` (calls over the last 30 days)
into bench/data/ (SQLite) or into the PostgreSQL database named by ``--database-url``
(created if missing; generated when it holds no call) and reused; delete the file or drop
the database to regenerate. On PostgreSQL the hand-written floors are the same statements
in PostgreSQL's dialect (``%s`` parameters, timestamptz values, ``count(*) FILTER``) on a
raw psycopg cursor.

Statistics are measured by bench/bench_stats.py (its docstring says how each floor is
written): today, 30 days cold (the first request on a new connection; no request sums calls
any more: triggers keep the rollups as calls are written) and warm.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
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

# Seeded SIP passwords are encrypted; the bench never decrypts them, so any key will do.
os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session, SQLModel  # noqa: E402

from bench import bench_stats, machine  # noqa: E402
from services import db, seed  # noqa: E402
from services.call_center import call_history  # noqa: E402
from services.call_center import get_call_history, get_stats, log_call  # noqa: E402
from services.models import call_numbers  # noqa: E402
from services.models.call_stats_triggers import drop_ddl, trigger_ddl  # noqa: E402
from services.models import (  # noqa: E402
    CallCreate,
    CallDirection,
    CallFilters,
    CallOrder,
    CallStatus,
    Client,
    Principal,
    Role,
    Tenant,
    User,
)

DATA_DIR = ROOT / "bench" / "data"
STATUSES = (CallStatus.COMPLETED, CallStatus.MISSED)


def _sql_time(value: datetime) -> str:
    # How SQLAlchemy stores a naive-UTC DateTime in SQLite.
    return value.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _seed(engine: sa.Engine, *, calls: int, tenants: int, clients_per_tenant: int, where: str) -> None:
    print(f"generating {calls:,} calls, {tenants} firms, {clients_per_tenant:,} clients each into {where} ...", flush=True)
    began = time.perf_counter()
    SQLModel.metadata.create_all(engine)
    with Session(engine) as session:
        seed.seed_demo(session=session, calls=calls, tenants=tenants, clients_per_tenant=clients_per_tenant)
        session.commit()
    print(f"generated in {time.perf_counter() - began:.0f} s", flush=True)


def _create_indexes(engine: sa.Engine) -> None:
    # Tables and indexes added to the models after the data set was generated.
    SQLModel.metadata.create_all(engine)
    for table in SQLModel.metadata.sorted_tables:
        for index in table.indexes:
            index.create(engine, checkfirst=True)
    # Number search's dictionary of the calls already there, as migration ns02a1b2010n builds it,
    # and its triggers (made again: a run stopped during the trigger blocks below leaves none).
    with engine.begin() as conn:
        for statement in (*call_numbers.drop_statements(conn.dialect.name), *call_numbers.create_statements(conn.dialect.name)):
            conn.exec_driver_sql(statement)
        if conn.execute(sa.text("SELECT 1 FROM call_number LIMIT 1")).first() is None:
            began = time.perf_counter()
            conn.execute(sa.text(call_numbers.fill_statement(conn.dialect.name)))
            print(f"number dictionary built in {time.perf_counter() - began:.0f} s", flush=True)
    # The statistics' rollups of the calls already there (create_all made their triggers).
    bench_stats.ensure_rollups(engine)


def prepare(path: Path, *, calls: int, tenants: int, clients_per_tenant: int) -> sa.Engine:
    engine = db.create_db_engine(f"sqlite:///{path}")
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        _seed(engine, calls=calls, tenants=tenants, clients_per_tenant=clients_per_tenant, where=str(path))
    _create_indexes(engine)
    return engine


def prepare_postgres(url: str, *, calls: int, tenants: int, clients_per_tenant: int) -> sa.Engine:
    """The PostgreSQL database of ``url``, created and seeded the first time."""
    target = sa.engine.make_url(db.normalise_url(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}).first() is None:
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    engine = db.create_db_engine(target.render_as_string(hide_password=False))
    with engine.connect() as conn:
        has_calls = sa.inspect(conn).has_table("call") and conn.execute(sa.text("SELECT 1 FROM call LIMIT 1")).first()
    if not has_calls:
        _seed(engine, calls=calls, tenants=tenants, clients_per_tenant=clients_per_tenant, where=target.database or url)
    _create_indexes(engine)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not has_calls:
            # The seed wrote every call in one transaction: each rollup row got a new version per
            # call (150 MB for 17,786 rows); compacted as steady-state small transactions keep them.
            conn.execute(sa.text("VACUUM FULL call_stats_hour, call_stats_day"))
        conn.execute(sa.text("VACUUM ANALYZE"))
    return engine


class Firm:
    def __init__(self, tenant_id: int, manager: Principal, agent: Principal, numbers: list[str]) -> None:
        self.tenant_id = tenant_id
        self.manager = manager
        self.agent = agent
        self.numbers = numbers


def load_firms(engine: sa.Engine) -> list[Firm]:
    firms = []
    with Session(engine) as session:
        for tenant_id in session.execute(sa.select(Tenant.id).order_by(Tenant.id)).scalars():
            users = session.execute(
                sa.select(User.id, User.role).where(User.tenant_id == tenant_id).order_by(User.id)
            ).all()
            manager = next(u for u in users if u.role in (Role.MANAGER, Role.ADMIN, Role.OWNER))
            agent = next(u for u in users if u.role == Role.AGENT)
            numbers = list(
                session.execute(
                    sa.select(Client.phone_e164)
                    .where(Client.tenant_id == tenant_id, Client.phone_e164.is_not(None))
                    .order_by(Client.id)
                    .limit(2000)
                ).scalars()
            )
            firms.append(
                Firm(
                    tenant_id,
                    Principal(user_id=manager.id, tenant_id=tenant_id, role=manager.role),
                    Principal(user_id=agent.id, tenant_id=tenant_id, role=Role.AGENT),
                    numbers,
                )
            )
    return firms


def measure(fn: Callable[[], Any], iterations: int) -> list[float]:
    fn()  # warm caches and compiled statements
    times = []
    for _ in range(iterations):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return times


def p(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1]


def report(name: str, service: list[float], sql: list[float], target_p95: float) -> dict[str, Any]:
    ok = "ok" if p(service, 95) < target_p95 else "MISSED"
    ratio = statistics.median(service) / statistics.median(sql)
    print(
        f"{name:<42} service p50 {p(service, 50):7.2f} ms  p95 {p(service, 95):7.2f} ms  "
        f"(target p95 < {target_p95:g} ms: {ok})   SQL p50 {p(sql, 50):7.2f} ms  p95 {p(sql, 95):7.2f} ms   "
        f"overhead x{ratio:.2f}",
        flush=True,
    )
    return {"name": name, "p50": p(service, 50), "p95": p(service, 95), "sql_p50": p(sql, 50), "sql_p95": p(sql, 95)}


HISTORY_SQL = """
SELECT c.id, c.agent_user_id, u.full_name, c.extension, c.direction, c.status, c.remote_number,
       c.remote_e164, c.client_id, cl.name, c.case_id, cs.title, c.notes, c.started_at, c.answered_at,
       c.ended_at, c.ring_seconds, c.talk_seconds, c.hangup_cause, c.sip_call_id
FROM call c
LEFT JOIN "user" u ON u.id = c.agent_user_id
LEFT JOIN client cl ON cl.id = c.client_id
LEFT JOIN legal_case cs ON cs.id = c.case_id
WHERE {where}
ORDER BY c.started_at DESC, c.id DESC
LIMIT 50 {offset}
"""

COUNT_SQL = "SELECT count(*) FROM call c WHERE {where}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50,000 calls and 1,000 clients per firm")
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--clients-per-tenant", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--cold-iterations", type=int, default=30, help="30-day stats measured on a new connection")
    parser.add_argument("--log-calls", type=int, default=5000, help="calls logged for the throughput figure")
    parser.add_argument("--trigger-blocks", type=int, default=40, help="blocks of calls logged alternately without and with the number triggers")
    parser.add_argument("--trigger-block-calls", type=int, default=100)
    parser.add_argument("--number-search-only", action="store_true", help="measure the history's number search only")
    parser.add_argument(
        "--parts", default="number-search,history,stats,log",
        help="comma-separated parts to measure (number-search, history, stats, log); default all",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL URL (e.g. postgresql://postgres@127.0.0.1:5432/bench_calls): generate and measure there instead of SQLite",
    )
    args = parser.parse_args()
    parts = {"number-search"} if args.number_search_only else set(args.parts.split(","))
    calls = args.calls or (50_000 if args.quick else 1_000_000)
    clients = args.clients_per_tenant or (1_000 if args.quick else 10_000)
    path = DATA_DIR / f"call_center-{args.tenants}t-{calls}c-{clients}cl.db"

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.processor())
    postgres = args.database_url is not None
    if postgres:
        engine = prepare_postgres(args.database_url, calls=calls, tenants=args.tenants, clients_per_tenant=clients)
        with engine.connect() as conn:
            version = "PostgreSQL " + conn.execute(sa.text("SHOW server_version")).scalar_one()
        where = f"PostgreSQL database {engine.url.database}"
    else:
        engine = prepare(path, calls=calls, tenants=args.tenants, clients_per_tenant=clients)
        version = f"SQLite {__import__('sqlite3').sqlite_version}"
        where = path.name
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {version}")
    print(f"load average: {open('/proc/loadavg').read().strip()}", flush=True)
    print(machine.speed_line(), flush=True)
    firms = load_firms(engine)
    per_firm = calls // len(firms)
    print(f"data: {where}: {len(firms)} firms, ~{per_firm:,} calls each; {args.iterations} iterations per figure", flush=True)
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    month_ago = now - timedelta(days=30)
    raw = engine.raw_connection()
    if postgres:
        # One statement, one transaction, as the SQLite cursor runs them (no transaction left open).
        raw.driver_connection.autocommit = True

    def stamp(value: datetime) -> Any:
        # A time as the driver binds it: text on SQLite (as SQLAlchemy stores it), timestamptz on PG.
        return value if postgres else _sql_time(value)

    def sql(statement: str, params: tuple[Any, ...]) -> Callable[[], Any]:
        if postgres:
            statement = statement.replace("?", "%s")

        def run() -> Any:
            cur = raw.cursor()
            cur.execute(statement, params)
            rows = cur.fetchall()
            cur.close()
            return rows

        return run

    def service(fn: Callable[..., Any], **kwargs: Any) -> Any:
        # Committed as the edges do (session_scope): stats keep the rollups they compute.
        with Session(engine) as session:
            result = fn(session=session, **kwargs)
            session.commit()
            return result

    def firm() -> Firm:
        return rng.choice(firms)

    # 3. Number search on parts of a client's number (+9665XXXXXXXX), each kind measured
    # through the service (the number dictionary, services/models/call_numbers.py; the count
    # bounded at call_history.COUNT_BOUND), through the service made to scan (what it did before
    # the dictionary: LIKE over ix_call_tenant_remote), and by hand-written statements doing the
    # service's job on the dictionary, each one statement giving the page of 50 with the names
    # joined and the count bounded as the service bounds it (a scalar subquery counting the
    # numbers' calls up to the bound + 1 from ix_call_tenant_remote): "lookup" takes the page from
    # the numbers' calls sorted, "walk" from the firm's calls read newest first by the history
    # index and tested against the numbers; the floor is the faster of the two at p50. Also
    # printed: the earlier floor (the page with the exact count(*) OVER ()) and the scan's page.
    kinds: dict[str, Callable[[str], str]] = {
        "6 middle digits": lambda n: n[5:11],
        "last 4 digits": lambda n: n[-4:],
        "middle group of 4": lambda n: n[7:11],
        "with country code (9665…, 8)": lambda n: n[1:9],
        "with + and country code (7)": lambda n: n[:8],
        "with trunk 0 (05…, 7)": lambda n: "0" + n[4:10],
        "whole national number (05…)": lambda n: "0" + n[4:],
    }

    def scan_fragment(typed: str) -> str:
        # The fragment whose matches hold every other's: the digits without the trunk 0s.
        digits = "".join(ch for ch in typed if ch.isdigit())
        return digits.lstrip("0") or digits

    bound = getattr(call_history, "COUNT_BOUND", 1000)
    numbers_of = "SELECT number FROM call_number WHERE tenant_id = ? AND suffix >= ? AND suffix < ?"
    dictionary_where = (
        f"c.id IN (SELECT id FROM call WHERE tenant_id = ? AND remote_e164 IN ({numbers_of})"
        f" UNION ALL SELECT id FROM call WHERE tenant_id = ? AND remote_e164 IS NULL AND remote_number IN ({numbers_of}))"
    )
    bounded_count = (
        f"(SELECT count(*) FROM (SELECT 1 FROM call WHERE tenant_id = ? AND remote_e164 IN ({numbers_of})"
        f" UNION ALL SELECT 1 FROM call WHERE tenant_id = ? AND remote_e164 IS NULL AND remote_number IN ({numbers_of})"
        f" LIMIT {bound + 1}) AS found)"
    )
    lookup_where = (
        f"c.id IN (SELECT id FROM (SELECT id, started_at FROM call WHERE tenant_id = ? AND remote_e164 IN ({numbers_of})"
        f" UNION ALL SELECT id, started_at FROM call WHERE tenant_id = ? AND remote_e164 IS NULL AND remote_number IN ({numbers_of}))"
        " AS m ORDER BY started_at DESC, id DESC LIMIT 50)"
    )
    walk_where = (
        f"c.id IN (SELECT id FROM call WHERE tenant_id = ? AND coalesce(remote_e164, remote_number) IN ({numbers_of})"
        " ORDER BY started_at DESC, id DESC LIMIT 50)"
    )

    def with_column(statement: str, column: str) -> str:
        out = statement.replace("c.sip_call_id\nFROM", f"c.sip_call_id, {column}\nFROM")
        assert column in out
        return out

    exact_sql = with_column(HISTORY_SQL.format(where=dictionary_where, offset=""), "count(*) OVER ()")
    lookup_sql = with_column(HISTORY_SQL.format(where=lookup_where, offset=""), bounded_count)
    walk_sql = with_column(HISTORY_SQL.format(where=walk_where, offset=""), bounded_count)
    if postgres:
        # The dictionary's text is in the "C" collation: compared in the calls' own, the
        # numbers are looked up in ix_call_tenant_remote (else PostgreSQL hashes the firm's calls).
        exact_sql, lookup_sql, walk_sql = (
            q.replace("SELECT number FROM", 'SELECT number COLLATE "default" FROM') for q in (exact_sql, lookup_sql, walk_sql)
        )
    scan_where = (
        "c.id IN (SELECT id FROM call WHERE tenant_id = ? AND (remote_e164 LIKE ? OR"
        " (remote_e164 IS NULL AND remote_number LIKE ?)) ORDER BY started_at DESC, id DESC LIMIT 50)"
    )
    limit = call_history.MAX_DICTIONARY_NUMBERS
    for kind, cut in kinds.items() if "number-search" in parts else ():

        def typed(f: Firm, cut: Callable[[str], str] = cut) -> str:
            return cut(rng.choice(f.numbers))

        bounded = [0]

        def by_service() -> Any:
            f = firm()
            page = service(get_call_history, tenant_id=f.tenant_id, actor=f.manager, filters=CallFilters(number=typed(f)))
            bounded[0] += bool(getattr(page, "count_is_lower_bound", False))
            return page

        def dictionary_params(f: Firm) -> tuple[Any, ...]:
            digits = scan_fragment(typed(f))
            t, hi = f.tenant_id, digits + call_numbers.AFTER_DIGITS
            return (t, t, digits, hi, t, t, digits, hi)

        def by_exact_sql() -> Any:
            f = firm()
            return sql(exact_sql, dictionary_params(f))()

        def by_lookup_sql() -> Any:
            f = firm()
            p = dictionary_params(f)
            return sql(lookup_sql, p + p)()

        def by_walk_sql() -> Any:
            f = firm()
            p = dictionary_params(f)
            return sql(walk_sql, p + p[:4])()

        def by_scan_sql() -> Any:
            f = firm()
            like = f"%{scan_fragment(typed(f))}%"
            return sql(HISTORY_SQL.format(where=scan_where, offset=""), (f.tenant_id, like, like))()

        service_times = measure(by_service, args.iterations)
        share = bounded[0] / (args.iterations + 1)
        call_history.MAX_DICTIONARY_NUMBERS = -1  # every search scans, as before the dictionary
        try:
            scan_times = measure(by_service, args.iterations)
        finally:
            call_history.MAX_DICTIONARY_NUMBERS = limit
        lookup = measure(by_lookup_sql, args.iterations)
        walk = measure(by_walk_sql, args.iterations)
        floor = min(lookup, walk, key=statistics.median)
        exact = measure(by_exact_sql, args.iterations)
        scan_floor = measure(by_scan_sql, args.iterations)
        ok = "ok" if p(service_times, 95) < 5 else "MISSED"
        print(
            f"number search, {kind:<29} service p50 {p(service_times, 50):6.2f} p95 {p(service_times, 95):6.2f} ms"
            f" (target p95 < 5 ms: {ok}; {share:.0%} past the bound)  floor (page + count to {bound:,}) p50 {p(floor, 50):6.2f}"
            f" p95 {p(floor, 95):6.2f}  x{statistics.median(service_times) / statistics.median(floor):.2f}"
            f" [lookup p50 {p(lookup, 50):6.2f} p95 {p(lookup, 95):6.2f}, walk p50 {p(walk, 50):6.2f} p95 {p(walk, 95):6.2f}]"
            f" | exact count(*) OVER () p50 {p(exact, 50):6.2f} p95 {p(exact, 95):6.2f}"
            f" | service scanning p50 {p(scan_times, 50):6.2f} p95 {p(scan_times, 95):6.2f}"
            f"  scan SQL (page only) p50 {p(scan_floor, 50):6.2f} p95 {p(scan_floor, 95):6.2f}",
            flush=True,
        )
    if "number-search" in parts:
        print(f"load average: {open('/proc/loadavg').read().strip()}", flush=True)
    if parts == {"number-search"}:
        return

    # 1. First page, filtered by status and date range.
    def history_filtered() -> Any:
        f = firm()
        filters = CallFilters(statuses=list(STATUSES), date_from=month_ago + timedelta(days=10), date_to=now)
        return service(get_call_history, tenant_id=f.tenant_id, actor=f.manager, filters=filters)

    # The floors of history pages are what a user is shown: the page and how many match
    # (the calls page shows the total and numbers the pages; the API returns ``count``), so
    # a hand-written page statement and a hand-written count(*) with the same conditions.
    def history_filtered_sql() -> Any:
        f = firm()
        where = "c.tenant_id = ? AND c.status IN ('COMPLETED', 'MISSED') AND c.started_at >= ? AND c.started_at < ?"
        params = (f.tenant_id, stamp(month_ago + timedelta(days=10)), stamp(now))
        return sql(HISTORY_SQL.format(where=where, offset=""), params)(), sql(COUNT_SQL.format(where=where), params)()

    results = []
    if "history" in parts:
        results.append(report(
            "history p1, status+date filter (+count)", measure(history_filtered, args.iterations), measure(history_filtered_sql, args.iterations), 15
        ))

    # 2. A deep numbered page, unfiltered.
    deep = max(1, min(1000, per_firm // 50))

    def history_deep() -> Any:
        f = firm()
        return service(get_call_history, tenant_id=f.tenant_id, actor=f.manager, page=deep)

    def history_deep_sql() -> Any:
        f = firm()
        where = (
            "c.id IN (SELECT id FROM call WHERE tenant_id = ? ORDER BY started_at DESC, id DESC "
            f"LIMIT 50 OFFSET {(deep - 1) * 50})"
        )
        return sql(HISTORY_SQL.format(where=where, offset=""), (f.tenant_id,))(), sql(COUNT_SQL.format(where="c.tenant_id = ?"), (f.tenant_id,))()

    if "history" in parts:
        results.append(report(f"history page {deep}, unfiltered (+count)", measure(history_deep, args.iterations), measure(history_deep_sql, args.iterations), 30))

    # 2b. The same deep page oldest first: the history index read forwards instead of backwards.
    def history_deep_oldest() -> Any:
        f = firm()
        return service(get_call_history, tenant_id=f.tenant_id, actor=f.manager, page=deep, order=CallOrder.OLDEST_FIRST)

    def history_deep_oldest_sql() -> Any:
        f = firm()
        where = (
            "c.id IN (SELECT id FROM call WHERE tenant_id = ? ORDER BY started_at ASC, id ASC "
            f"LIMIT 50 OFFSET {(deep - 1) * 50})"
        )
        return sql(HISTORY_SQL.format(where=where, offset=""), (f.tenant_id,))(), sql(COUNT_SQL.format(where="c.tenant_id = ?"), (f.tenant_id,))()

    if "history" in parts:
        results.append(report(
            f"history page {deep}, oldest first (+count)",
            measure(history_deep_oldest, args.iterations),
            measure(history_deep_oldest_sql, args.iterations),
            30,
        ))

    # 4. Stats for today and for the last 30 days (bench/bench_stats.py: the floors are written there).
    if "stats" in parts:
        results += bench_stats.run(engine, [f.manager for f in firms], iterations=args.iterations, cold_iterations=args.cold_iterations, rng=rng)
    if "log" not in parts:
        raw.close()
        print(f"load average: {open('/proc/loadavg').read().strip()}", flush=True)
        return

    # 5. log_call throughput, one transaction per call as the API does it.
    run_id = f"bench-{time.time_ns()}"
    logged = 0

    def log_calls(count: int) -> float:
        """Calls per second logging ``count`` new calls."""
        nonlocal logged
        began = time.perf_counter()
        for i in range(logged, logged + count):
            f = firms[i % len(firms)]
            number = f.numbers[i % len(f.numbers)] if i % 4 else "0559" + f"{i:06d}"[-6:]
            with Session(engine) as session:
                log_call(
                    session=session,
                    tenant_id=f.tenant_id,
                    actor=f.agent,
                    data=CallCreate(direction=CallDirection.INBOUND, remote_number=number, sip_call_id=f"{run_id}-{i}"),
                )
                session.commit()
        logged += count
        return count / (time.perf_counter() - began)

    n = args.log_calls
    service_rate = log_calls(n)

    insert_sql = (
        "INSERT INTO call (tenant_id, agent_user_id, direction, status, remote_number, remote_e164, client_id, notes,"
        " started_at, sip_call_id, updated_at) VALUES (?, ?, 'INBOUND', 'RINGING', ?, ?,"
        " (SELECT id FROM client WHERE tenant_id = ? AND phone_e164 = ? ORDER BY id LIMIT 1), '', ?, ?, ?)"
    )
    mark = "%s" if postgres else "?"
    if postgres:
        insert_sql = insert_sql.replace("?", "%s")
    began = time.perf_counter()
    for i in range(n):
        f = firms[i % len(firms)]
        number = f.numbers[i % len(f.numbers)]
        at = stamp(datetime.now(timezone.utc))
        cur = raw.cursor()
        cur.execute(insert_sql, (f.tenant_id, f.agent.user_id, number, number, f.tenant_id, number, at, f"{run_id}-sql-{i}", at))
        raw.commit()
    sql_rate = n / (time.perf_counter() - began)
    ok = "ok" if service_rate > 1000 else "MISSED"
    print(
        f"{'log_call with client match':<34} service {service_rate:7.0f} calls/s (target > 1000: {ok})   "
        f"SQL {sql_rate:7.0f} calls/s   overhead x{sql_rate / service_rate:.2f}",
        flush=True,
    )
    # What the rollup triggers cost an INSERT of a call: the same statement with the triggers
    # and without them (dropped for this part only; its rows deleted before they come back).
    cur = raw.cursor()
    without_rate = 0.0
    try:
        for statement in drop_ddl(engine.dialect.name):
            cur.execute(statement)
        raw.commit()
        began = time.perf_counter()
        for i in range(n):
            f = firms[i % len(firms)]
            number = f.numbers[i % len(f.numbers)]
            at = stamp(datetime.now(timezone.utc))
            cur.execute(insert_sql, (f.tenant_id, f.agent.user_id, number, number, f.tenant_id, number, at, f"{run_id}-bare-{i}", at))
            raw.commit()
        without_rate = n / (time.perf_counter() - began)
        cur.execute(f"DELETE FROM call WHERE sip_call_id LIKE {mark}", (f"{run_id}-bare-%",))
        raw.commit()
    finally:
        for statement in trigger_ddl(engine.dialect.name):
            cur.execute(statement)
        raw.commit()
    print(
        f"{'INSERT of a call, rollup triggers':<34} with {1000 / sql_rate:.3f} ms, without {1000 / without_rate:.3f} ms per call"
        f" (x{without_rate / sql_rate:.2f})",
        flush=True,
    )
    # What keeping number search's dictionary costs log_call (the triggers of
    # services/models/call_numbers.py): blocks of calls alternately with and without the
    # triggers (dropped and made again between blocks; the calls logged without them are
    # deleted below with the others, so the dictionary stays complete).
    dialect = engine.dialect.name
    per_block: dict[bool, list[float]] = {True: [], False: []}
    for block in range(args.trigger_blocks):
        on = block % 2 == 1
        with engine.begin() as conn:
            for statement in call_numbers.create_statements(dialect) if on else call_numbers.drop_statements(dialect):
                conn.exec_driver_sql(statement)
        per_block[on].append(1000 / log_calls(args.trigger_block_calls))
    if args.trigger_blocks % 2 == 1:
        with engine.begin() as conn:
            for statement in call_numbers.create_statements(dialect):
                conn.exec_driver_sql(statement)
    if args.trigger_blocks:
        on, off = statistics.median(per_block[True]), statistics.median(per_block[False])
        print(
            f"{'log_call, number triggers on / off':<34} median of {args.trigger_blocks // 2} blocks of "
            f"{args.trigger_block_calls} calls each: {on:.3f} / {off:.3f} ms per call (x{on / off:.3f})",
            flush=True,
        )
    # Past the services; the rollups' triggers take these calls out again.
    cur = raw.cursor()
    cur.execute(f"DELETE FROM call WHERE sip_call_id LIKE {mark}", (f"{run_id}-%",))
    raw.commit()
    raw.close()
    print(f"load average: {open('/proc/loadavg').read().strip()}", flush=True)


if __name__ == "__main__":
    main()
