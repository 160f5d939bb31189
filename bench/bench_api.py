"""Throughput of ``POST /api/v1/call-center/calls`` over HTTP (issue 16: > 1,000 requests/s
with 8 clients on one worker; issue 14: > 1,000/s with several workers on PostgreSQL).

A fresh database (migrated, one firm, an agent with a bearer token, 10,000 clients so the
auto-match has an index to search) is served by the REST app (``watheeq_ui.api.app:api``,
the app Reflex mounts) under granian, the server Reflex runs in production (or uvicorn),
in its own process on a loopback port, without a proxy. The load comes from another process:
``--concurrency`` keep-alive HTTP/1.1 connections on one asyncio loop, each sending the next
request as soon as the answer is in. Half the numbers belong to a client.

    .venv/bin/python bench/bench_api.py                       # SQLite file, granian, 1 worker, 8 clients
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
        f"{name:<34} {len(latencies) / elapsed:6.0f} req/s   p50 {_pct(latencies, 0.50):6.2f} ms  p95 {_pct(latencies, 0.95):6.2f} ms"
        f"  p99 {_pct(latencies, 0.99):6.2f} ms  mean {statistics.fmean(latencies) * 1000:6.2f} ms   {len(latencies)} requests, {errors} errors"
    )


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
    args = parser.parse_args()

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
        try:
            _wait_ready(port, proc)
            load = open("/proc/loadavg").read().split()[:3]
            _hammer(port, token, args.warmup, args.concurrency, run + "w", "calls")
            calls = _hammer(port, token, args.requests, args.concurrency, run, "calls")
            health = _hammer(port, token, args.requests, args.concurrency, run, "health")
            load_after = open("/proc/loadavg").read().split()[:3]
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        floor = _floor(url, tenant_id, agent_id, args.requests, args.concurrency, run + "f")
        in_process = _in_process(tenant_id, token, args.in_process, run + "i")

    kind = "PostgreSQL" if not db.is_sqlite(url) else "SQLite (WAL)"
    print(f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"{kind}, {args.server} {args.workers} worker(s), REST app alone{' with the live bus' if args.live_bus else ''}, no proxy; {args.concurrency} keep-alive clients "
        f"(one asyncio process); load average before/after {' '.join(load)} / {' '.join(load_after)}"
    )
    print(_line("POST /api/v1/call-center/calls", *calls))
    print(_line("GET /api/v1/health (HTTP floor)", *health))
    print(
        f"{'hand-written INSERT floor':<34} {floor:6.0f} calls/s ({args.concurrency} threads, own driver connections, "
        "client matched by a subquery, one commit each)"
    )
    print(f"{'same work in-process, 1 thread':<34} {in_process:6.0f} calls/s (token check + log_call + commit)")


if __name__ == "__main__":
    main()
