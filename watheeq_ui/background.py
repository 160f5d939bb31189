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

from services import call_center, config, db, live, presence
from services.pbx import registrations, retention

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


# With the 10 s heartbeat and the 30 s silence, a closed tab is Offline within 33 s.
PRESENCE_SWEEP_SECONDS = 3.0


def sweep_presence() -> int:
    """One pass of services.presence.sweep over every firm: ended wrap-ups, silent tabs."""
    with db.session_scope() as session:
        return presence.sweep(session=session)


async def sweep_presence_periodically(interval: float = PRESENCE_SWEEP_SECONDS) -> None:
    """The backend's lifespan task: an agent whose tab stopped beating for 30 s is Offline
    (within 30 s + ``interval``), a wrap-up ends when the firm's wrap-up time has passed."""
    while True:
        try:
            moved = await asyncio.to_thread(sweep_presence)
        except Exception:
            log.exception("the presence sweep failed; next try in %s s", interval)
        else:
            if moved:
                log.info("presence sweep moved %d agent(s)", moved)
        await asyncio.sleep(interval)


DEV_PBX_CTL_ENV = "WATHEEQ_DEV_PBX_CTL"


def sync_dev_pbx_dnd(ctl: str) -> int:
    """The dev PBX lab's ring group leaves out the agents who are Away (dev/kamailio/dnd.py)."""
    from dev.kamailio import dnd  # dev only: never imported when no lab runs beside the app

    with db.session_scope() as session:
        return len(dnd.sync(ctl, session))


async def follow_presence_in_dev_pbx() -> None:
    """With ``WATHEEQ_DEV_PBX_CTL`` (scripts/run.sh sets it when it starts the PBX lab): on
    every presence change, the lab's do-not-disturb table is replaced. Nothing otherwise."""
    ctl = config.get(DEV_PBX_CTL_ENV)
    if not ctl:
        return
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    stop = live.subscribe(lambda change: loop.call_soon_threadsafe(changed.set) if change.topic == "agents" else None)
    try:
        while True:
            try:
                await asyncio.to_thread(sync_dev_pbx_dnd, ctl)
            except Exception as exc:  # the lab is optional: it may be down or restarting
                log.warning("dev PBX do-not-disturb not updated: %s", exc)
            await changed.wait()
            changed.clear()
    finally:
        stop()


REGISTRATION_SECONDS_ENV = "WATHEEQ_PBX_REGISTRATION_SECONDS"


def registration_interval() -> float:
    """Seconds between two readings of the PBX's registrations (default 5)."""
    raw = config.get(REGISTRATION_SECONDS_ENV)
    try:
        value = float(raw) if raw is not None else registrations.READ_SECONDS
    except ValueError:
        value = 0.0
    if value <= 0:
        log.warning("%s=%r is not a positive number of seconds; using %s", REGISTRATION_SECONDS_ENV, raw, registrations.READ_SECONDS)
        return registrations.READ_SECONDS
    return value


async def follow_pbx_registrations(interval: float | None = None) -> None:
    """With ``WATHEEQ_DEV_PBX_CTL``: this process's one reader of the lab's registrations
    (services/pbx/registrations.py); an agent whose extension is not registered is Offline
    within ``interval`` seconds. Nothing otherwise (a UCM's reader plugs in here)."""
    ctl = config.get(DEV_PBX_CTL_ENV)
    if not ctl:
        return
    every = registration_interval() if interval is None else interval
    source = registrations.KamailioRegistrations(ctl)
    failing = False
    while True:
        try:
            result = await asyncio.to_thread(registrations.read_once, source)
        except Exception as exc:  # the lab is optional: it may be down or restarting
            if not failing:
                log.warning("reading the dev PBX's registrations failed (kept trying every %s s): %s", every, exc)
            failing = True
        else:
            if failing:
                log.info("reading the dev PBX's registrations again")
            failing = False
            if result.moved:
                log.info("%d agent(s) without a registration at the PBX marked Offline", result.moved)
        await asyncio.sleep(every)


async def purge_recordings_daily() -> None:
    """The backend's lifespan task deleting recordings past each firm's retention period."""
    await retention.purge_daily()
