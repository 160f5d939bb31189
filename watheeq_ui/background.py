"""Work the backend does on its own, beside the pages.

A call whose page reloaded or closed mid-call gets no further event from the browser. The
agent's next registration closes it; when the agent does not come back, this sweep does
(:func:`services.call_center.close_stale_calls`), so nothing stays RINGING forever. It runs
in every backend worker, which is harmless: a call closed by one is no longer open for the
others.

The daily recording retention run (:func:`services.pbx.retention.purge_daily`) runs here
too, for the same reason it is harmless in every worker: rows one run is purging are
skipped by another (``FOR UPDATE SKIP LOCKED``), and a purged row is not purged again.
"""

from __future__ import annotations

import asyncio
import logging

from services import call_center, config, db
from services.pbx import retention

log = logging.getLogger(__name__)

SWEEP_SECONDS_ENV = "WATHEEQ_STALE_CALL_SWEEP_SECONDS"
DEFAULT_SWEEP_SECONDS = 60.0


def sweep_interval() -> float:
    """Seconds between two sweeps: the env setting when it is a positive number, else 60."""
    raw = config.get(SWEEP_SECONDS_ENV)
    if raw is None:
        return DEFAULT_SWEEP_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        log.warning("%s=%r is not a positive number of seconds; using %s", SWEEP_SECONDS_ENV, raw, DEFAULT_SWEEP_SECONDS)
        return DEFAULT_SWEEP_SECONDS
    return value


def sweep_stale_calls() -> int:
    """One sweep over every firm; returns how many calls it closed."""
    with db.session_scope() as session:
        return call_center.close_stale_calls(session=session)


async def close_stale_calls_periodically(interval: float | None = None) -> None:
    """The backend's lifespan task: a sweep at start, then one every ``interval`` seconds.

    The database work runs in a thread so the event loop keeps serving pages. A failed
    sweep (database down, ...) is logged and the next one runs on time; cancellation at
    shutdown ends the loop.
    """
    every = sweep_interval() if interval is None else interval
    while True:
        try:
            closed = await asyncio.to_thread(sweep_stale_calls)
        except Exception:
            log.exception("closing stale calls failed; next try in %s s", every)
        else:
            if closed:
                log.info("closed %d stale call(s)", closed)
        await asyncio.sleep(every)


async def purge_recordings_daily() -> None:
    """The backend's lifespan task deleting recordings past each firm's retention period."""
    await retention.purge_daily()
