"""The WhatsApp sidecar process: ``python -m services.whatsapp.sidecar``.

It runs a supervisor that starts the worker (``worker.Sidecar``) as a child process and restarts
it (with backoff) when it dies: a Go fatal error inside neonize kills the whole process and
cannot be caught in Python. The worker keeps the same worker id across restarts, so it takes
its own leases back at once; other sidecars take them when they lapse. SIGTERM stops every
client without logging it out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services import live_bus, logs
from services.whatsapp.runtime import Settings, backoff_delay
from services.whatsapp.worker import Sidecar

__all__ = ["Settings", "Sidecar", "backoff_delay", "main", "run_worker", "supervise"]

log = logging.getLogger("watheeq.whatsapp.sidecar")

# --------------------------------------------------------------------------- processes


async def run_worker(worker_id: str | None = None) -> None:
    """The worker process: one sidecar until SIGTERM/SIGINT."""
    settings = Settings.from_env()
    loop = asyncio.get_running_loop()
    # Every started neonize client blocks one default-executor thread for its whole life.
    loop.set_default_executor(ThreadPoolExecutor(max_workers=settings.max_sessions + 16, thread_name_prefix="wa-client"))
    # What this process writes (line status, QR codes, messages) reaches the dashboard's workers.
    live_bus.start(listen=False)
    sidecar = Sidecar(worker_id=worker_id, settings=settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sidecar.stopping.set)
    await sidecar.run()


def supervise(worker_id: str) -> int:
    """Run the worker as a child and restart it when it dies; SIGTERM is passed on and awaited."""
    stop = False
    child: subprocess.Popen[bytes] | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failures = 0
    while not stop:
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "services.whatsapp.sidecar", "--worker", "--worker-id", worker_id])
        code = child.wait()
        if stop:
            return 0
        # A worker that ran for a while before dying starts the backoff over.
        failures = 1 if time.monotonic() - started > 60 else failures + 1
        delay = backoff_delay(failures, 1.0, 60.0)
        log.error("WhatsApp worker exited with %s; restarting in %.1fs", code, delay)
        deadline = time.monotonic() + delay
        while not stop and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.whatsapp.sidecar", description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help="run the worker itself (the supervisor starts it)")
    parser.add_argument("--worker-id", default=None, help="stable id of this sidecar's leases")
    args = parser.parse_args(argv)
    logs.configure()
    worker_id = args.worker_id or f"{socket.gethostname()}:{os.getpid()}"
    if args.worker:
        asyncio.run(run_worker(worker_id))
        return 0
    return supervise(worker_id)


if __name__ == "__main__":
    sys.exit(main())
