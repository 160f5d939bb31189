"""Load on the production topology: N dashboard sessions over the Reflex websocket, and REST POST /api/v1/call-center/calls.

    .venv/bin/python bench/bench_live_load.py sessions --site https://localhost:8443 --cacert CA --sessions 300
    .venv/bin/python bench/bench_live_load.py rest --site https://localhost:8443 --cacert CA --seconds 20

``sessions``: each session is a Reflex websocket client (bench/reflex_ws.py: the protocol the
frontend speaks, not a browser): a tab of a browser signed in as one of the demo users opens
the call history and changes a filter every ``--every`` seconds. Printed: how many signed in, the filter
event's round trip (until the server's final update) p50/p95/p99/max, errors (failed
sign-ins, closed sockets, timeouts) and the changes pushed to idle sessions.

``idle``: ``--sessions`` WhatsApp pages opened and left alone; printed: the database's
transactions per second (pg_stat_database, ``--database-url``) without them and with them.

``rest``: ``--concurrency`` clients POST /api/v1/calls as fast as answered for ``--seconds``;
printed: requests per second and the status codes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.reflex_ws import CALLS, ROOT, ReflexTab  # noqa: E402

WHATSAPP = f"{ROOT}.watheeq_ui___pages___whatsapp___state____whatsapp_state"

# The admin first: the idle WhatsApp pages show every part (the linking panel too).
USERS = ["admin@demo.watheeq.local", "manager@demo.watheeq.local", "agent@demo.watheeq.local", "agent2@demo.watheeq.local"]
PASSWORD = "watheeq-demo"
DIRECTIONS = ["INBOUND", "OUTBOUND", "any"]


def _ssl(cacert: str | None) -> ssl.SSLContext | None:
    if not cacert:
        return None
    return ssl.create_default_context(cafile=cacert)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ws_url(args) -> str:
    return args.site.replace("https://", "wss://").replace("http://", "ws://")


async def _tokens(args) -> list[str]:
    """One sign-in per demo user (the login page over the websocket). Sessions are then tabs of
    signed-in browsers: the sign-in throttle allows 20 sign-ins per source address and every
    client here comes from one address."""
    tokens = []
    for user in args.users.split(","):
        tab = ReflexTab(_ws_url(args), _ssl(args.cacert))
        try:
            tokens.append(await tab.login(user, PASSWORD))
        finally:
            await tab.close()
    return tokens


async def _session(n: int, args, stats: dict, stop: asyncio.Event) -> None:
    tab = ReflexTab(_ws_url(args), _ssl(args.cacert))
    try:
        stats["loads"].append(await tab.resume(stats["tokens"][n % len(stats["tokens"])], "/calls", CALLS))
        stats["signed_in"] += 1
        turn = n
        # Spread the filter changes over the period, as people do.
        await asyncio.sleep((n % 100) / 100 * args.every)
        while not stop.is_set():
            turn += 1
            took, _ = await tab.send(
                f"{CALLS}.set_filter", {"name": "direction", "value": DIRECTIONS[turn % len(DIRECTIONS)]}, changes=CALLS
            )
            stats["round_trips"].append(took)
            try:
                await asyncio.wait_for(stop.wait(), args.every)
            except asyncio.TimeoutError:
                pass
        stats["pushed"] += tab.pushed
    except (ConnectionError, asyncio.TimeoutError, OSError) as exc:
        stats["errors"][type(exc).__name__] += 1
    except Exception as exc:  # anything else is an error of the run too, counted by kind
        stats["errors"][f"{type(exc).__name__}: {str(exc)[:60]}"] += 1
    finally:
        await tab.close()


async def run_sessions(args) -> dict:
    stats: dict = {"signed_in": 0, "round_trips": [], "loads": [], "errors": Counter(), "pushed": 0}
    stats["tokens"] = await _tokens(args)
    stop = asyncio.Event()
    tasks = []
    started = time.monotonic()
    for n in range(args.sessions):
        tasks.append(asyncio.create_task(_session(n, args, stats, stop)))
        # Tabs open over the ramp, as an office starts its day.
        await asyncio.sleep(args.ramp / max(1, args.sessions))
    ramped = time.monotonic()
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    trips = stats["round_trips"]
    print(f"sessions: {args.sessions} requested, {stats['signed_in']} signed in and on the history "
          f"(ramp {ramped - started:.0f} s, then {args.seconds} s)")
    loads = stats["loads"]
    if loads:
        print(f"history page load (connect, hydrate, session, first rows): p50={_pct(loads, .5)*1000:.0f} ms "
              f"p95={_pct(loads, .95)*1000:.0f} ms max={max(loads)*1000:.0f} ms")
    if trips:
        print(f"filter event round trip: n={len(trips)} p50={_pct(trips, .5)*1000:.0f} ms p95={_pct(trips, .95)*1000:.0f} ms "
              f"p99={_pct(trips, .99)*1000:.0f} ms max={max(trips)*1000:.0f} ms mean={statistics.mean(trips)*1000:.0f} ms")
    print(f"errors: {sum(stats['errors'].values())} {dict(stats['errors'])}")
    print(f"updates pushed to sessions between their events: {stats['pushed']}")
    return stats


def _transactions(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        return conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


async def _rate(database_url: str, seconds: float) -> float:
    """Database transactions per second over ``seconds`` (every client of the database; the two
    of this measurement are taken out). PostgreSQL flushes its counters about once a second."""
    before = await asyncio.to_thread(_transactions, database_url)
    await asyncio.sleep(seconds)
    after = await asyncio.to_thread(_transactions, database_url)
    return max(0, after - before - 1) / seconds


async def run_idle(args) -> None:
    """Database work of open WhatsApp pages left alone: the rate without them, then with them."""
    await asyncio.sleep(3)
    baseline = await _rate(args.database_url, args.seconds)
    tabs: list[ReflexTab] = []
    token = (await _tokens(args))[0]
    opening = asyncio.Semaphore(10)  # ten pages loading at a time, as an office opening its tabs
    loads: list[float] = []
    failed: Counter = Counter()

    async def open_page() -> None:
        tab = ReflexTab(_ws_url(args), _ssl(args.cacert))
        tabs.append(tab)
        async with opening:
            try:
                loads.append(await asyncio.wait_for(tab.resume(token, "/whatsapp", WHATSAPP), 60))
            except Exception as exc:  # counted: a page that did not open is not an idle page
                failed[type(exc).__name__] += 1

    began = time.monotonic()
    await asyncio.gather(*(open_page() for _ in range(args.sessions)))
    print(f"opened {len(loads)} WhatsApp pages in {time.monotonic() - began:.1f} s (10 at a time; page load p50 "
          f"{_pct(loads, .5)*1000:.0f} ms, p95 {_pct(loads, .95)*1000:.0f} ms); failed {dict(failed)}")
    # The last pages' loads are done, and their transactions counted: a PostgreSQL backend
    # flushes its counters when it goes idle, at most once a second, else up to 10 s later.
    await asyncio.sleep(args.settle)
    open_rate = await _rate(args.database_url, args.seconds)
    alive = sum(not t.closed for t in tabs)
    for tab in tabs:
        await tab.close()
    print(f"idle database transactions/s (whole topology: workers, sidecars): without pages {baseline:.2f}, "
          f"with {alive} open WhatsApp pages {open_rate:.2f}, the pages' share {open_rate - baseline:.2f}")
    print("IDLE_JSON " + json.dumps({"pages": alive, "baseline": baseline, "open": open_rate}))


async def run_rest(args) -> None:
    import httpx

    verify = args.cacert or True
    async with httpx.AsyncClient(base_url=args.site, verify=verify, timeout=30) as client:
        answer = await client.post("/api/v1/auth/token", json={"email": USERS[2], "password": PASSWORD})
        answer.raise_for_status()
        token = answer.json()["access_token"]
    codes: Counter = Counter()
    latencies: list[float] = []
    stop_at = time.monotonic() + args.seconds

    async def worker() -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=args.site, verify=verify, timeout=30, limits=limits,
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            while time.monotonic() < stop_at:
                body = {"direction": "OUTBOUND", "remote_number": "0501234567", "status": "RINGING",
                        "sip_call_id": f"bench-{uuid.uuid4().hex}"}
                began = time.perf_counter()
                try:
                    response = await client.post("/api/v1/call-center/calls", json=body)
                    codes[response.status_code] += 1
                except httpx.HTTPError as exc:
                    codes[type(exc).__name__] += 1
                latencies.append(time.perf_counter() - began)

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.monotonic() - began
    created = codes.get(201, 0)
    print(f"REST POST /api/v1/call-center/calls: {created / elapsed:.0f} created/s over {elapsed:.1f} s with {args.concurrency} clients; "
          f"codes {dict(codes)}; latency p50={_pct(latencies, .5)*1000:.0f} ms p95={_pct(latencies, .95)*1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["sessions", "rest", "idle"])
    parser.add_argument("--users", default=",".join(USERS), help="demo users the sessions are signed in as (idle: the first)")
    parser.add_argument("--database-url", default=os.environ.get("WATHEEQ_DATABASE_URL", ""))
    parser.add_argument("--site", default=os.environ.get("WATHEEQ_BENCH_SITE", "https://localhost"))
    parser.add_argument("--cacert", default=None)
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--ramp", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=15.0, help="idle: seconds between the pages' opening and the measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; target {args.site}")
    if args.mode == "sessions":
        asyncio.run(run_sessions(args))
    elif args.mode == "idle":
        asyncio.run(run_idle(args))
    else:
        asyncio.run(run_rest(args))


if __name__ == "__main__":
    main()
