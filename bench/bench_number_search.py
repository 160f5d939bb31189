"""Number search on 1,000,000 calls through the trigram index, on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_number_search.py                      # SQLite (bench/data/, made once)
    .venv/bin/python bench/bench_number_search.py --postgres postgresql://postgres@127.0.0.1:5432/watheeq_bench

For each kind of query a user types (the last 4 digits, a middle group of 4, the whole number
with the country code, the local number with its trunk 0), on a random client's number of a
random firm: ``get_call_history(filters=CallFilters(number=...))`` (the first page of 50 and
the count, as the history page asks), p50/p95 over ``--iterations``; beside it the floor, the
same answer hand-written in SQL on the same index (ids from the trigram index, the firm's
newest 50 and their count), and the scan it replaces (``LIKE '%digits%'`` over the firm's
numbers). Every query's count is checked equal to the scan's.

The PostgreSQL database named is emptied, migrated and filled with the SQLite file's firms,
users, clients and calls (COPY).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_call_center import DATA_DIR, load_firms, prepare  # noqa: E402  (sets a throwaway secret key)

import sqlalchemy as sa  # noqa: E402
from sqlmodel import Session  # noqa: E402

from services import db, migrate, phones  # noqa: E402
from services.call_center import get_call_history  # noqa: E402
from services.models import Call, Case, CallFilters, Client, Tenant, User  # noqa: E402
from services.models.call_center import NUMBER_FTS, NUMBER_INDEX_SQLITE  # noqa: E402


def _ensure_fts(engine: sa.Engine) -> None:
    """A data file made before the index existed gets it (the migration does the same)."""
    with engine.begin() as conn:
        for statement in NUMBER_INDEX_SQLITE:
            conn.exec_driver_sql(statement)
        indexed = conn.exec_driver_sql(f"SELECT count(*) FROM {NUMBER_FTS}").scalar_one()
        calls = conn.exec_driver_sql("SELECT count(*) FROM call").scalar_one()
        if indexed != calls:
            print(f"indexing {calls:,} numbers ...", flush=True)
            conn.exec_driver_sql(f"DELETE FROM {NUMBER_FTS}")
            conn.exec_driver_sql(f"INSERT INTO {NUMBER_FTS}(rowid, number) SELECT id, coalesce(remote_e164, remote_number) FROM call")


def _copy_to_postgres(source: sa.Engine, url: str) -> sa.Engine:
    import psycopg

    target = db.create_db_engine(url)
    with target.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    migrate.upgrade(db.normalise_url(url))
    began = time.perf_counter()
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as pg, source.connect() as lite:
        for model in (Tenant, User, Client, Case, Call):
            table = model.__table__
            columns = [c.name for c in table.columns]
            with pg.cursor() as cur:
                quoted = ", ".join(f'"{c}"' for c in columns)
                with cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
                    for row in lite.execute(sa.select(*table.columns)):
                        copy.write_row([getattr(v, "value", v) for v in row])
            pg.execute(f"SELECT setval(pg_get_serial_sequence('\"{table.name}\"', 'id'), (SELECT max(id) FROM \"{table.name}\"))")
        pg.commit()
        pg.execute("ANALYZE")
    print(f"copied to PostgreSQL in {time.perf_counter() - began:.0f} s", flush=True)
    return target


def _pct(times: list[float], q: int) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1]


def _measure(fn: Callable[[], Any], iterations: int) -> list[float]:
    fn()
    times = []
    for _ in range(iterations):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return times


def run(engine: sa.Engine, name: str, iterations: int) -> None:
    dialect = engine.dialect.name
    firms = load_firms(engine)
    rng = random.Random(16)
    kinds: dict[str, Callable[[str], str]] = {
        "last 4 digits": lambda e164: e164[-4:],
        "middle group of 4": lambda e164: e164[7:11],
        "with the country code": lambda e164: e164,
        "local, with the trunk 0": lambda e164: "0" + e164[4:],
    }
    if dialect == "sqlite":
        indexed = f"c.id IN (SELECT rowid FROM {NUMBER_FTS} WHERE number LIKE :p)"
    else:
        indexed = "coalesce(c.remote_e164, c.remote_number) LIKE :p"
    floor_page = sa.text(f"SELECT c.id FROM call c WHERE c.tenant_id = :t AND {indexed} ORDER BY c.started_at DESC, c.id DESC LIMIT 50")
    floor_count = sa.text(f"SELECT count(*) FROM call c WHERE c.tenant_id = :t AND {indexed}")
    scan_count = sa.text("SELECT count(*) FROM call c WHERE c.tenant_id = :t AND coalesce(c.remote_e164, c.remote_number) LIKE :p")
    print(f"\n{name}: {len(firms)} firms; {iterations} iterations per figure")
    print(f"{'query':<26} {'service p50':>12} {'p95':>8}   {'floor p50':>10} {'p95':>8}   {'scan p50':>9}   ratio")
    for kind, typed in kinds.items():
        picks = [(f, typed(rng.choice(f.numbers))) for f in (rng.choice(firms) for _ in range(iterations + 1))]
        it = iter(picks)

        def service() -> None:
            firm, query = next(it)
            with Session(engine) as session:
                get_call_history(session=session, tenant_id=firm.tenant_id, actor=firm.manager, filters=CallFilters(number=query))

        def floor() -> None:
            firm, query = next(it)
            pattern = "%" + "".join(ch for ch in query if ch.isdigit()).lstrip("0") + "%"
            with engine.connect() as conn:
                conn.execute(floor_page, {"t": firm.tenant_id, "p": pattern}).all()
                conn.execute(floor_count, {"t": firm.tenant_id, "p": pattern}).scalar_one()

        def scan() -> None:
            firm, query = next(it)
            pattern = "%" + "".join(ch for ch in query if ch.isdigit()).lstrip("0") + "%"
            with engine.connect() as conn:
                conn.execute(scan_count, {"t": firm.tenant_id, "p": pattern}).scalar_one()

        s = _measure(service, iterations)
        it = iter(picks)
        fl = _measure(floor, iterations)
        it = iter(picks[: 21])
        sc = _measure(scan, 20)
        print(f"{kind:<26} {_pct(s, 50):9.2f} ms {_pct(s, 95):6.2f} ms   {_pct(fl, 50):7.2f} ms {_pct(fl, 95):6.2f} ms"
              f"   {_pct(sc, 50):6.1f} ms   {statistics.median(s) / statistics.median(fl):4.1f}x")
        # The same answer as the scan (the count, for 10 of the queries).
        with Session(engine) as session, engine.connect() as conn:
            for firm, query in picks[:10]:
                page = get_call_history(session=session, tenant_id=firm.tenant_id, actor=firm.manager, filters=CallFilters(number=query))
                digits = "".join(ch for ch in query if ch.isdigit())
                expected = conn.execute(
                    sa.text("SELECT count(*) FROM call c WHERE c.tenant_id = :t AND (coalesce(c.remote_e164, c.remote_number) LIKE :a"
                            " OR coalesce(c.remote_e164, c.remote_number) LIKE :b OR coalesce(c.remote_e164, c.remote_number) LIKE :e)"),
                    {"t": firm.tenant_id, "a": f"%{digits}%", "b": f"%{digits.lstrip('0') or digits}%",
                     "e": "%" + (phones.try_normalise(query, "SA") or digits) + "%"},
                ).scalar_one()
                assert page.count == expected, (kind, query, page.count, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--clients-per-tenant", type=int, default=10_000)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--postgres", help="also on this PostgreSQL database (emptied and filled)")
    args = parser.parse_args()
    path = DATA_DIR / f"call_center-{args.tenants}t-{args.calls}c-{args.clients_per_tenant}cl.db"
    engine = prepare(path, calls=args.calls, tenants=args.tenants, clients_per_tenant=args.clients_per_tenant)
    _ensure_fts(engine)
    import platform
    import sqlite3

    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    run(engine, f"SQLite ({path.name})", args.iterations)
    if args.postgres:
        pg = _copy_to_postgres(engine, args.postgres)
        with pg.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar_one()
        run(pg, f"PostgreSQL {version}", args.iterations)


if __name__ == "__main__":
    main()
