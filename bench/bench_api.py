"""Throughput of ``POST /api/v1/call-center/calls`` over HTTP (issue 16: > 1,000 requests/s
with 8 clients on one worker; issue 14: > 1,000/s with several workers on PostgreSQL).

A fresh database (migrated, one firm, an agent with a bearer token, 10,000 clients so the
auto-match has an index to search) is served by the REST app (``watheeq_ui.api.app:api``,
the app Reflex mounts) under granian, the server Reflex runs in production (or uvicorn),
in its own process on a loopback port, without a proxy. The load comes from another process:
``--concurrency`` keep-alive HTTP/1.1 connections, each sending the next request as soon as
the answer is in, from ``wrk`` (Debian's, written in C; ``scripts/system_deps.sh`` installs
it; a Lua script writes each POST body) or from the Python client (one asyncio loop; it
spends about as much CPU per request as the route under test, on the same cores), or from
both one after the other against the same server (``--client both``). Half the numbers
belong to a client.

    .venv/bin/python bench/bench_api.py                       # SQLite file, granian, 1 worker, 8 clients, wrk
    .venv/bin/python bench/bench_api.py --client both         # wrk, then the Python client
    .venv/bin/python bench/bench_api.py --server uvicorn
    .venv/bin/python bench/bench_api.py --database-url postgresql://postgres@127.0.0.1:5432/bench_x --workers 2

A PostgreSQL database given is emptied and migrated (use a scratch database). Printed beside
the figure, measured in the same run: the hand-written floor (the same INSERT with the client
matched by a subquery, committed one by one from as many threads as clients, no HTTP), the
same work in-process (token check + ``log_call`` + commit, one thread, no HTTP), and
``GET /api/v1/health`` under the same server and load (the HTTP stack and one ``SELECT 1``:
what any request costs before it does its work).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import machine  # noqa: E402
from services import accounts, call_center, db, migrate, security  # noqa: E402
from services.models import CallCreate, CallDirection, Client, Role  # noqa: E402

CLIENTS = 10_000


def _seed(url: str) -> tuple[str, int, int]:
    if not db.is_sqlite(url):
        engine = db.create_db_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        engine.dispose()
    migrate.upgrade(url)
    db.configure(db.create_db_engine(url))
    with db.session_scope() as session:
        tenant = accounts.create_tenant(session=session, name="Bench Law")
        agent = accounts.create_user(
            session=session, tenant_id=tenant.id, email="agent@bench.test", password="bench-password", role=Role.AGENT
        )
        session.add_all(
            Client(tenant_id=tenant.id, name=f"Client {i}", phone=f"050{i:07d}", phone_e164=f"+96650{i:07d}")
            for i in range(CLIENTS)
        )
        principal = accounts.authenticate(session=session, email=agent.email, password="bench-password")
        token = accounts.issue_token(session=session, principal=principal)
    return token, principal.tenant_id, principal.user_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_command(server: str, port: int, workers: int, live_bus: bool) -> list[str]:
    app = "bench.api_with_live_bus:api" if live_bus else "watheeq_ui.api.app:api"
    if server == "granian":
        return [
            sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log", app,
        ]
    return [
        sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--log-level", "warning", "--no-access-log", "--lifespan", "off",
    ]


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not answer within 60 s")


def _body(i: int, run: str) -> bytes:
    # Every other call is from a known client's number, written the way a PBX would.
    number = f"0{50}{i % CLIENTS:07d}" if i % 2 == 0 else f"+9665{(i * 7919) % 10**8:08d}"
    return json.dumps({"direction": "INBOUND", "remote_number": number, "sip_call_id": f"{run}-{i}@pbx"}).encode()


async def _load(port: int, token: str, total: int, concurrency: int, run: str, path: str) -> tuple[list[float], int, float]:
    """``total`` requests over ``concurrency`` keep-alive connections; (latencies, errors, elapsed)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while (i := next(counter, None)) is not None:
            if path == "calls":
                body = _body(i, run)
                head = (
                    f"POST /api/v1/call-center/calls HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                request, expected = head + body, 201
            else:
                request, expected = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 200
            began = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - began)
            if int(status_line.split()[1]) != expected:
                errors += 1
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - began


def _load_process(queue: multiprocessing.Queue, *args: object) -> None:
    queue.put(asyncio.run(_load(*args)))  # type: ignore[arg-type]


def _hammer(*args: object) -> tuple[list[float], int, float]:
    # The load runs in its own process so that it does not share this one's interpreter lock.
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=_load_process, args=(queue, *args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


# Each wrk thread numbers its own requests; the run and the thread make every SIP Call-ID new.
# The bodies are the Python client's (_body): even requests a client's number, odd ones not.
_WRK_SCRIPT = r"""
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local n, calls, prefix, health = 0, false, "", nil
local headers = {}
function init(args)
  calls = args[1] == "calls"
  prefix = args[2] .. "-" .. tid .. "-"
  headers["Authorization"] = "Bearer " .. args[3]
  headers["Content-Type"] = "application/json"
  health = wrk.format("GET", "/api/v1/health")
end

function request()
  if not calls then return health end
  n = n + 1
  local number
  if n % 2 == 0 then
    number = string.format("050%07d", n % CLIENTS)
  else
    number = string.format("+9665%08d", (n * 7919) % 100000000)
  end
  local body = '{"direction":"INBOUND","remote_number":"' .. number .. '","sip_call_id":"' .. prefix .. n .. '@pbx"}'
  return wrk.format("POST", "/api/v1/call-center/calls", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT %d %d %d %d %d %d %d %d %.1f\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean))
end
"""


def _wrk(
    port: int, token: str, seconds: int, concurrency: int, threads: int, run: str, path: str, script: Path
) -> tuple[dict[str, float], int, float]:
    """wrk for ``seconds`` over ``concurrency`` keep-alive connections: (percentiles in s, errors, requests/s)."""
    if not script.exists():
        script.write_text(_WRK_SCRIPT.replace("CLIENTS", str(CLIENTS)))
    out = subprocess.run(
        [
            "wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s", "-s", str(script),
            f"http://127.0.0.1:{port}/", "--", path, run, token,
        ],
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    fields = next(line for line in out.stdout.splitlines() if line.startswith("WRK-RESULT")).split()[1:]
    requests, duration_us, socket_errors, status_errors = (int(f) for f in fields[:4])
    p50, p95, p99, worst = (int(f) / 1e6 for f in fields[4:8])
    stats = {"count": requests, "p50": p50, "p95": p95, "p99": p99, "max": worst, "mean": float(fields[8]) / 1e6}
    return stats, socket_errors + status_errors, requests / (duration_us / 1e6)


def _in_process(tenant_id: int, token: str, total: int, run: str) -> float:
    """The same work without HTTP: authenticate the token and log the call, one transaction each."""
    start = time.perf_counter()
    for i in range(total):
        with db.session_scope() as session:
            actor = accounts.principal_for_token(session=session, token=token)
            body = json.loads(_body(i, run))
            call_center.log_call(
                session=session,
                tenant_id=tenant_id,
                actor=actor,
                data=CallCreate(direction=CallDirection.INBOUND, remote_number=body["remote_number"], sip_call_id=body["sip_call_id"]),
            )
    return total / (time.perf_counter() - start)


_FLOOR_SQL = (
    "INSERT INTO call (tenant_id, agent_user_id, direction, status, remote_number, remote_e164, client_id, notes,"
    " started_at, sip_call_id, updated_at) VALUES ({p}, {p}, 'INBOUND', 'RINGING', {p}, {p},"
    " (SELECT id FROM client WHERE tenant_id = {p} AND phone_e164 = {p} ORDER BY id LIMIT 1), '', {p}, {p}, {p})"
)


def _floor(url: str, tenant_id: int, agent_id: int, total: int, concurrency: int, run: str) -> float:
    """The hand-written floor: the same row (client matched by a subquery) inserted and
    committed one by one from ``concurrency`` threads, each on its own driver connection
    (the engine's, so SQLite has the same pragmas): calls/s."""
    import threading
    from datetime import datetime, timezone

    engine = db.create_db_engine(url, pool_size=concurrency + 1) if not db.is_sqlite(url) else db.create_db_engine(url)
    sqlite = db.is_sqlite(url)
    sql = _FLOOR_SQL.format(p="?" if sqlite else "%s")
    counter = iter(range(total))
    lock = threading.Lock()

    def worker() -> None:
        raw = engine.raw_connection()
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                number = f"+96650{i % CLIENTS:07d}" if i % 2 == 0 else f"+9665{(i * 7919) % 10**8:08d}"
                now = datetime.now(timezone.utc)
                stamp = now.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else now
                cur = raw.cursor()
                cur.execute(sql, (tenant_id, agent_id, number, number, tenant_id, number, stamp, f"{run}-{i}", stamp))
                cur.close()
                raw.commit()
        finally:
            raw.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = total / (time.perf_counter() - began)
    engine.dispose()
    return rate


def _pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))] * 1000


def _line(name: str, latencies: list[float], errors: int, elapsed: float) -> str:
    latencies = sorted(latencies)
    return (
        f"{name:<42} {len(latencies) / elapsed:6.0f} req/s   p50 {_pct(latencies, 0.50):6.2f} ms  p95 {_pct(latencies, 0.95):6.2f} ms"
        f"  p99 {_pct(latencies, 0.99):6.2f} ms  mean {statistics.fmean(latencies) * 1000:6.2f} ms   {len(latencies)} requests, {errors} errors"
    )


def _wrk_line(name: str, stats: dict[str, float], errors: int, rate: float) -> str:
    return (
        f"{name:<42} {rate:6.0f} req/s   p50 {stats['p50'] * 1000:6.2f} ms  p95 {stats['p95'] * 1000:6.2f} ms"
        f"  p99 {stats['p99'] * 1000:6.2f} ms  mean {stats['mean'] * 1000:6.2f} ms   {stats['count']:.0f} requests, {errors} errors"
    )


def _calls_written(url: str, run: str) -> int:
    """Rows the load wrote (its Call-IDs start with ``run``): what the server did, whatever the client counted."""
    import sqlalchemy as sa

    engine = db.create_db_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM call WHERE sip_call_id LIKE :p"), {"p": f"{run}-%"}).scalar_one()
    finally:
        engine.dispose()


_CLIENTS = {
    "wrk": "wrk, {} s per figure",
    "python": "one asyncio process",
    "both": "wrk, {} s per figure, then one asyncio process",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--server", choices=("granian", "uvicorn"), default="granian")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="a scratch PostgreSQL database (emptied); default a new SQLite file")
    parser.add_argument(
        "--live-bus", action="store_true",
        help="start the live bus in each worker, as a Reflex backend worker does (on SQLite a committed call also writes its change to live_change)",
    )
    parser.add_argument("--in-process", type=int, default=2000, help="calls logged in-process for the comparison")
    parser.add_argument(
        "--client", choices=("wrk", "python", "both"), default="wrk" if shutil.which("wrk") else "python",
        help="the load generator: wrk (C; scripts/system_deps.sh installs it), the Python asyncio client, or both in turn",
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per figure with wrk (warm-up: a fifth of it)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk's threads (one drives 8 connections at thousands a second)")
    args = parser.parse_args()
    speed = machine.speed_line()  # before anything of the bench runs
    if args.client != "python" and not shutil.which("wrk"):
        parser.error("wrk is not installed: bash scripts/system_deps.sh (as root) or apt-get install wrk; or --client python")

    os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())
    with tempfile.TemporaryDirectory(prefix="watheeq-bench-api-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        token, tenant_id, agent_id = _seed(url)
        port = _free_port()
        env = {**os.environ, "WATHEEQ_DATABASE_URL": url, "WATHEEQ_ENV_FILE": str(Path(tmp) / "no.env")}
        # The server's JSON access lines (one per request, as in production) go to a file.
        server_log = open(Path(tmp) / "server.log", "wb")
        proc = subprocess.Popen(
            _server_command(args.server, port, args.workers, args.live_bus), cwd=ROOT, env=env, start_new_session=True,
            stdout=server_log, stderr=subprocess.STDOUT,
        )
        run = f"b{time.time_ns()}"
        lines: list[str] = []
        try:
            _wait_ready(port, proc)
            load = open("/proc/loadavg").read().split()[:3]
            if args.client in ("wrk", "both"):
                script = Path(tmp) / "bench_api.lua"
                wrk = (port, token)
                tail = (args.concurrency, args.wrk_threads)
                _wrk(*wrk, max(1, args.duration // 5), *tail, run + "w", "calls", script)
                calls_wrk = _wrk(*wrk, args.duration, *tail, run + "k", "calls", script)
                health_wrk = _wrk(*wrk, args.duration, *tail, run, "health", script)
                lines += [
                    _wrk_line("POST /api/v1/call-center/calls (wrk)", *calls_wrk),
                    _wrk_line("GET /api/v1/health, HTTP floor (wrk)", *health_wrk),
                    f"{'':<42} {_calls_written(url, run + 'k'):6d} calls written by the wrk run",
                ]
            if args.client in ("python", "both"):
                if args.client == "python":
                    _hammer(port, token, args.warmup, args.concurrency, run + "w", "calls")
                calls = _hammer(port, token, args.requests, args.concurrency, run + "p", "calls")
                health = _hammer(port, token, args.requests, args.concurrency, run, "health")
                lines += [
                    _line("POST /api/v1/call-center/calls (Python)", *calls),
                    _line("GET /api/v1/health, HTTP floor (Python)", *health),
                ]
            load_after = open("/proc/loadavg").read().split()[:3]
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        floor = _floor(url, tenant_id, agent_id, args.requests, args.concurrency, run + "f")
        in_process = _in_process(tenant_id, token, args.in_process, run + "i")

    kind = "PostgreSQL" if not db.is_sqlite(url) else "SQLite (WAL)"
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(speed)
    print(
        f"{kind}, {args.server} {args.workers} worker(s), REST app alone{' with the live bus' if args.live_bus else ''}, no proxy; {args.concurrency} keep-alive clients "
        f"({_CLIENTS[args.client].format(args.duration)}); load average before/after {' '.join(load)} / {' '.join(load_after)}"
    )
    print("\n".join(lines))
    print(
        f"{'hand-written INSERT floor':<42} {floor:6.0f} calls/s ({args.concurrency} threads, own driver connections, "
        "client matched by a subquery, one commit each)"
    )
    print(f"{'same work in-process, 1 thread':<42} {in_process:6.0f} calls/s (token check + log_call + commit)")


if __name__ == "__main__":
    main()
