"""Throughput of ``POST /api/v1/call-center/calls`` over HTTP (target: > 400 requests/s).

A fresh SQLite database (migrated, one firm, an agent with a bearer token, 10,000
clients so the auto-match has an index to search) is served by uvicorn in its own
process on a loopback port; 8 client threads each keep one HTTP/1.1 connection open
and log calls as fast as the server answers. Half the numbers belong to a client.

    .venv/bin/python bench/bench_api.py [--requests 4000] [--concurrency 8]

Prints requests/s, p50/p95/p99 latency, and the same ``log_call`` run in-process (no
HTTP) so the cost of the HTTP layer is visible as a ratio.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services import accounts, call_center, db, migrate, security  # noqa: E402
from services.models import CallCreate, CallDirection, Client, Role  # noqa: E402

CLIENTS = 10_000


def _seed(url: str) -> tuple[str, int]:
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
    return token, principal.tenant_id


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("uvicorn exited before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("uvicorn did not answer within 30 s")


def _body(i: int) -> bytes:
    # Every other call is from a known client's number, written the way a PBX would.
    number = f"0{50}{i % CLIENTS:07d}" if i % 2 == 0 else f"+9665{(i * 7919) % 10**8:08d}"
    return json.dumps({"direction": "INBOUND", "remote_number": number, "sip_call_id": f"bench-{i}@pbx"}).encode()


def _hammer(port: int, token: str, total: int, concurrency: int, first: int) -> tuple[list[float], int, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(first, first + total))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            start = time.perf_counter()
            conn.request("POST", "/api/v1/call-center/calls", body=_body(i), headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 201:
                bad += 1
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - start


def _in_process(tenant_id: int, token: str, total: int, first: int) -> float:
    """The same work without HTTP: authenticate the token and log the call, one transaction each."""
    start = time.perf_counter()
    for i in range(first, first + total):
        with db.session_scope() as session:
            actor = accounts.principal_for_token(session=session, token=token)
            body = json.loads(_body(i))
            call_center.log_call(
                session=session,
                tenant_id=tenant_id,
                actor=actor,
                data=CallCreate(direction=CallDirection.INBOUND, remote_number=body["remote_number"], sip_call_id=body["sip_call_id"]),
            )
    return total / (time.perf_counter() - start)


def _pct(sorted_values: list[float], p: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()

    os.environ.setdefault("WATHEEQ_SECRET_KEY", security.generate_key())
    with tempfile.TemporaryDirectory(prefix="watheeq-bench-api-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        token, tenant_id = _seed(url)
        port = _free_port()
        env = {**os.environ, "WATHEEQ_DATABASE_URL": url, "WATHEEQ_ENV_FILE": str(Path(tmp) / "no.env")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "watheeq_ui.api.app:api", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", "--no-access-log", "--lifespan", "off"],
            cwd=ROOT,
            env=env,
        )
        try:
            _wait_ready(port, proc)
            _hammer(port, token, args.warmup, args.concurrency, first=0)
            latencies, errors, elapsed = _hammer(port, token, args.requests, args.concurrency, first=args.warmup)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        in_process = _in_process(tenant_id, token, 1000, first=args.warmup + args.requests)

    latencies.sort()
    rate = len(latencies) / elapsed
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"POST /api/v1/call-center/calls, SQLite, uvicorn (1 worker), {args.concurrency} concurrent keep-alive clients")
    print(f"requests: {len(latencies)}  errors: {errors}  elapsed: {elapsed:.2f} s")
    print(f"throughput: {rate:.0f} req/s  (target > 400)")
    print(f"latency ms: p50 {_pct(latencies, 0.50):.2f}  p95 {_pct(latencies, 0.95):.2f}  p99 {_pct(latencies, 0.99):.2f}  mean {statistics.fmean(latencies) * 1000:.2f}")
    print(f"same work in-process (token check + log_call + commit, 1 thread): {in_process:.0f} calls/s; HTTP/in-process ratio {rate / in_process:.2f}")


if __name__ == "__main__":
    main()
