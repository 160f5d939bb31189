"""The WhatsApp sidecar process: ``python -m services.whatsapp.sidecar``.

It runs a supervisor that starts the worker (``worker.Sidecar``) as a forked child process and
restarts it (with backoff) when it dies: a Go fatal error inside neonize kills the whole process and
cannot be caught in Python. Its worker id is stable (``identity``: this host's id and the
sidecar's name, held by a lock for the process's life), the same across the worker's restarts
and across a restart of the whole sidecar, so it takes its own leases back at once; other
sidecars take them when they lapse. The worker dies with its supervisor (a parent-death signal),
so a killed sidecar never leaves a worker behind that runs under its name. SIGTERM stops every
client without logging it out.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import ctypes
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from services import config, live_bus, logs
from services.whatsapp import identity
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


def _die_with_parent(parent: int) -> None:
    """In the worker: SIGKILL it when the supervisor dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the supervisor died before the request took effect
        os._exit(1)


def _fork_worker(worker_id: str) -> int:
    """Start the worker as a forked child: the supervisor has imported everything it needs and
    holds no thread, connection or Go runtime, so the child starts at once (a fresh interpreter
    would spend seconds importing again). The child inherits the identity's lock."""
    parent = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _die_with_parent(parent)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        asyncio.run(run_worker(worker_id))
        code = 0
    except BaseException:
        log.exception("WhatsApp worker failed")
    finally:
        logging.shutdown()
        os._exit(code)
    return 0  # unreachable: the child always leaves through os._exit


def supervise(worker_id: str) -> int:
    """Run the worker as a child and restart it when it dies; SIGTERM is passed on and awaited.

    While any worker of this sidecar is alive, its identity's lock is held (the child inherits
    it), so no other sidecar on the host can start under its name.
    """
    stop = False
    child: int | None = None

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stop
        stop = True
        if child is not None:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failures = 0
    while not stop:
        started = time.monotonic()
        child = _fork_worker(worker_id)
        _, status = os.waitpid(child, 0)
        child = None
        code = os.waitstatus_to_exitcode(status)
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
    parser.add_argument("--worker-id", default=None, help="the id of this sidecar's leases (the supervisor passes its own)")
    parser.add_argument("--name", default=None, help=f"this sidecar's name on the host (default ${identity.NAME_ENV}, else the first free slot)")
    args = parser.parse_args(argv)
    logs.configure()
    held: identity.WorkerIdentity | None = None
    if args.worker_id is None:
        try:
            held = identity.acquire(args.name)
        except identity.IdentityError as exc:
            log.error("%s", exc)
            return 2
        log.info("WhatsApp sidecar identity %s", held.worker_id)
    worker_id = args.worker_id or held.worker_id  # type: ignore[union-attr]
    try:
        if args.worker:
            asyncio.run(run_worker(worker_id))
            return 0
        return supervise(worker_id)
    finally:
        if held is not None:
            held.release()


if __name__ == "__main__":
    sys.exit(main())
