# Just over 400 lines: the per-firm worker and the process that runs the workers share their settings and plumbing.
"""The reconciler process: ``python -m services.pbx.reconciler`` (started by scripts/run.sh).

One asyncio worker per firm whose PBX settings name a CDR source, under per-firm leases
(:mod:`services.pbx.feed`), so several reconciler processes share the firms and one takes
over a dead one's firms when their leases lapse. A firm's worker:

1. catches up from the persisted watermark (the source's blocking ``catch_up``, in a thread);
2. follows the live feed, writing what arrives in small batches (at most ``batch_size``
   records or ``flush_seconds`` after the first one; the catch-up in ``catch_up_batch``);
3. catches up again every ``catch_up_seconds`` while live, and whenever the live feed is lost:
   then it records the feed disconnected, counts a gap when the catch-up found records the
   live feed had missed, and reopens the feed with capped exponential backoff.

Every batch is one transaction with its watermark, fenced by the lease's epoch: a worker that
lost its firm writes nothing more for it. Legs are keyed by the PBX's unique ids, so a batch
read twice (a restart, two workers around a takeover) changes nothing: each record is in the
ledger exactly once. After each batch, recordings named by its records are fetched by
``services.pbx.recordings.fetch_pending`` (when that module is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from services import config, db, live_bus, logs
from services.models import PbxSettings, Tenant
from services.pbx import feed
from services.pbx.records import CdrRecord, CdrSource, CdrSourceError
from services.tenancy import tenant_select
from services.whatsapp.runtime import backoff_delay

log = logging.getLogger("watheeq.pbx.reconciler")

SessionFactory = Callable[[], AbstractContextManager[Session]]
SourceFactory = Callable[[PbxSettings], "CdrSource | None"]


def _env_float(name: str, default: float) -> float:
    try:
        return float(config.get(name, str(default)) or default)
    except ValueError:
        return default


@dataclass
class ReconcilerSettings:
    """Tunables, each from a ``WATHEEQ_PBX_*`` variable."""

    tick_seconds: float = 1.0
    lease_seconds: float = 30.0
    batch_size: int = 500  # live records per transaction
    catch_up_batch: int = 2000  # catch-up records per transaction (bigger: fewer commits, measured ~25 % faster)
    flush_seconds: float = 0.2
    catch_up_seconds: float = 60.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_firms: int = 500

    @classmethod
    def from_env(cls) -> ReconcilerSettings:
        return cls(
            tick_seconds=_env_float("WATHEEQ_PBX_TICK_SECONDS", 1.0),
            lease_seconds=_env_float("WATHEEQ_PBX_LEASE_SECONDS", 30.0),
            batch_size=int(_env_float("WATHEEQ_PBX_BATCH_SIZE", 500)),
            catch_up_batch=int(_env_float("WATHEEQ_PBX_CATCH_UP_BATCH", 2000)),
            flush_seconds=_env_float("WATHEEQ_PBX_FLUSH_SECONDS", 0.2),
            catch_up_seconds=_env_float("WATHEEQ_PBX_CATCH_UP_SECONDS", 60.0),
            backoff_base=_env_float("WATHEEQ_PBX_BACKOFF_BASE_SECONDS", 1.0),
            backoff_cap=_env_float("WATHEEQ_PBX_BACKOFF_CAP_SECONDS", 60.0),
            max_firms=int(_env_float("WATHEEQ_PBX_MAX_FIRMS", 500)),
        )


def default_source(settings: PbxSettings) -> CdrSource | None:
    """The firm's source from :func:`services.pbx.sources.source_for` (blocking: it reads the
    firm's time zone, in which a UCM writes its record times)."""
    from services.pbx.sources import source_for

    with db.session_scope() as session:
        tenant = session.get(Tenant, settings.tenant_id)
        timezone = tenant.timezone if tenant is not None else None
    return source_for(settings, timezone=timezone)


def _fetch_recordings() -> Callable[..., int] | None:
    try:
        return importlib.import_module("services.pbx.recordings").fetch_pending  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


# Marks "the batch is full or its time is up; the feed goes on".
_MORE = object()


class FeedLost(CdrSourceError):
    def __init__(self) -> None:
        super().__init__("feed_lost", "the PBX's live record feed closed")


@dataclass
class FirmWorker:
    """Keeps one firm's ledger current while it holds the firm's lease."""

    tenant_id: int
    epoch: int
    reconciler: Reconciler
    stop: threading.Event = field(default_factory=threading.Event)
    source: CdrSource | None = None
    batches: int = 0
    failures: int = 0  # in a row, for the backoff
    _fetching: threading.Lock = field(default_factory=threading.Lock)

    @property
    def worker_id(self) -> str:
        return self.reconciler.worker_id

    def _write(self, fn: Callable[..., Any], **kwargs: Any) -> Any:
        with self.reconciler.session_factory() as session:
            return fn(session=session, tenant_id=self.tenant_id, worker_id=self.worker_id, epoch=self.epoch, **kwargs)

    def _commit(self, records: list[CdrRecord], *, live: bool, count_gap: bool) -> feed.BatchOutcome:
        assert self.source is not None
        outcome = self._write(
            feed.commit_batch, records=records, source_kind=self.source.kind, live=live, count_gap=count_gap
        )
        self.batches += 1
        self.fetch_recordings()
        return outcome

    def fetch_recordings(self) -> None:
        """Fetch the firm's pending recordings (``services.pbx.recordings.fetch_pending``) on a
        thread of their own, one run at a time, so a long file never holds up the ledger."""
        fetch = _fetch_recordings()
        if fetch is None or self.source is None or not self._fetching.acquire(blocking=False):
            return
        source = self.source

        def run() -> None:
            try:
                fetch(session_factory=self.reconciler.session_factory, tenant_id=self.tenant_id, source=source)
            except Exception:
                log.exception("fetching recordings of firm %s failed; the next batch tries again", self.tenant_id)
            finally:
                self._fetching.release()

        threading.Thread(target=run, name=f"recordings-{self.tenant_id}", daemon=True).start()

    def catch_up(self, *, after_loss: bool) -> int:
        """Blocking: every record after the watermark, in batches; returns how many were read."""
        assert self.source is not None
        watermark = self._write(feed.read_watermark)
        count_gap = after_loss
        batch: list[CdrRecord] = []
        read = 0
        for record in self.source.catch_up(watermark):
            if self.stop.is_set():
                break
            batch.append(record)
            read += 1
            if len(batch) >= self.reconciler.settings.catch_up_batch:
                if self._commit(batch, live=False, count_gap=count_gap).gap_filled:
                    count_gap = False  # one gap per catch-up
                batch = []
        if batch and not self.stop.is_set():
            self._commit(batch, live=False, count_gap=count_gap)
        return read

    async def run(self) -> None:
        s = self.reconciler.settings
        after_loss = False
        while not self.stop.is_set():
            try:
                if self.source is None:
                    self.source = await asyncio.to_thread(self._make_source)
                    if self.source is None:
                        return
                await self.follow_live(after_loss=after_loss, connected=self._connected)
            except feed.LeaseLost:
                log.warning("firm %s: lease lost; stopping", self.tenant_id)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                code, message = (exc.code, exc.message) if isinstance(exc, CdrSourceError) else ("internal", "the reconciler failed; retrying")
                if not isinstance(exc, CdrSourceError):
                    log.exception("firm %s: reconciling failed", self.tenant_id)
                self.failures += 1
                after_loss = True
                delay = backoff_delay(self.failures, s.backoff_base, s.backoff_cap)
                log.warning("firm %s: %s (%s); reopening in %.1fs", self.tenant_id, message, code, delay)
                try:
                    await asyncio.to_thread(self._write, feed.record_state, connected=False, error_code=code, error=message)
                except feed.LeaseLost:
                    return
                except Exception:
                    log.exception("firm %s: recording the feed's state failed", self.tenant_id)
                await asyncio.sleep(delay)

    def _make_source(self) -> CdrSource | None:
        with self.reconciler.session_factory() as session:
            settings = session.exec(tenant_select(PbxSettings, self.tenant_id)).first()
        return self.reconciler.source_factory(settings) if settings is not None else None

    async def _connected(self) -> None:
        assert self.source is not None
        await asyncio.to_thread(self._write, feed.record_state, connected=True, source_kind=self.source.kind)

    async def follow_live(self, *, after_loss: bool, connected: Callable[[], Any]) -> None:
        """Open the live feed, catch up from the watermark, then write the live records in
        batches, with a periodic catch-up in between. The feed is opened first and buffered
        while the catch-up runs, so no record written in between falls between the two (one
        read by both is stored once). Raises :class:`FeedLost` (or the source's error) when
        the feed ends."""
        assert self.source is not None
        s = self.reconciler.settings
        queue: asyncio.Queue[CdrRecord | BaseException | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async for record in self.source.live():  # type: ignore[union-attr]
                    await queue.put(record)
                await queue.put(None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the writer, which decides
                await queue.put(exc)

        reader = asyncio.create_task(read())
        try:
            await asyncio.sleep(0)  # the feed opens before the catch-up reads
            await asyncio.to_thread(self.catch_up, after_loss=after_loss)
            await connected()
            self.failures = 0
            next_catch_up = time.monotonic() + s.catch_up_seconds
            while not self.stop.is_set():
                timeout = max(0.0, next_catch_up - time.monotonic())
                try:
                    first = await asyncio.wait_for(queue.get(), timeout=timeout)
                except asyncio.TimeoutError:
                    await asyncio.to_thread(self.catch_up, after_loss=False)
                    # Recordings whose fetch failed (a file the PBX was still writing) are
                    # due again after their backoff even when no new record comes.
                    self.fetch_recordings()
                    next_catch_up = time.monotonic() + s.catch_up_seconds
                    continue
                batch: list[CdrRecord] = []
                item: Any = first
                deadline = time.monotonic() + s.flush_seconds
                while isinstance(item, CdrRecord):
                    batch.append(item)
                    item = _MORE
                    if len(batch) >= s.batch_size:
                        break
                    try:
                        item = await asyncio.wait_for(queue.get(), timeout=max(0.0, deadline - time.monotonic()))
                    except asyncio.TimeoutError:
                        break
                if batch:
                    await asyncio.to_thread(self._commit, batch, live=True, count_gap=False)
                if item is None:
                    raise FeedLost()
                if isinstance(item, BaseException):
                    raise item
        finally:
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):
                pass


class Reconciler:
    """One process's workers: claims firms' feeds, runs a :class:`FirmWorker` for each."""

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        settings: ReconcilerSettings | None = None,
        source_factory: SourceFactory | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.settings = settings or ReconcilerSettings.from_env()
        self.source_factory: SourceFactory = source_factory or default_source
        self.session_factory: SessionFactory = session_factory or db.session_scope
        self.workers: dict[int, FirmWorker] = {}
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()
        self._renewed_at = 0.0

    def _sync(self) -> tuple[set[int], list[feed.FeedLease]]:
        held = {t: w.epoch for t, w in self.workers.items()}
        with self.session_factory() as session:
            kept = feed.renew_leases(session=session, worker_id=self.worker_id, held=held, lease_seconds=self.settings.lease_seconds)
        with self.session_factory() as session:
            claimed = feed.claim_feeds(
                session=session, worker_id=self.worker_id, lease_seconds=self.settings.lease_seconds, held=kept,
                limit=max(0, self.settings.max_firms - len(kept)),
            )
        return kept, claimed

    async def tick(self) -> None:
        kept, claimed = await asyncio.to_thread(self._sync)
        for tenant_id in list(self.workers):
            task = self.tasks.get(tenant_id)
            if tenant_id not in kept or task is None or task.done():
                # Lost, or its worker stopped (lease lost, source gone): drop it; a firm still
                # ours is claimed again below under a new epoch and starts afresh.
                await self._drop(tenant_id)
                if tenant_id in kept:
                    await asyncio.to_thread(self._release, [tenant_id])
        for lease in claimed:
            if lease.tenant_id in self.workers:
                continue
            worker = FirmWorker(tenant_id=lease.tenant_id, epoch=lease.epoch, reconciler=self)
            self.workers[lease.tenant_id] = worker
            self.tasks[lease.tenant_id] = asyncio.get_running_loop().create_task(worker.run())
            log.info("firm %s: feed claimed (epoch %s)", lease.tenant_id, lease.epoch)

    async def _drop(self, tenant_id: int) -> None:
        worker = self.workers.pop(tenant_id, None)
        task = self.tasks.pop(tenant_id, None)
        if worker is not None:
            worker.stop.set()
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    def _release(self, tenant_ids: list[int] | None = None) -> None:
        with self.session_factory() as session:
            feed.release_leases(session=session, worker_id=self.worker_id, tenant_ids=tenant_ids)

    async def run(self) -> None:
        log.info("PBX reconciler %s started", self.worker_id)
        try:
            while not self.stopping.is_set():
                try:
                    await self.tick()
                except Exception:
                    log.exception("reconciler tick failed")
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=self.settings.tick_seconds)
                except asyncio.TimeoutError:
                    pass
        finally:
            for tenant_id in list(self.workers):
                await self._drop(tenant_id)
            try:
                await asyncio.to_thread(self._release)
            except Exception:
                log.exception("releasing the leases failed; they lapse on their own")
            log.info("PBX reconciler %s stopped", self.worker_id)


# The catch-up writes across every index of the call table; SQLite's default 2 MB page cache
# then rereads index pages from the OS on every batch. The reconciler's own connections only.
SQLITE_CACHE_KIB = 65_536


def tune_sqlite(engine: Any) -> None:
    """Give the reconciler's SQLite connections a larger page cache (no-op on PostgreSQL)."""
    if engine.dialect.name != "sqlite":
        return

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")

    import sqlalchemy as sa

    sa.event.listen(engine, "connect", on_connect)


async def serve(reconciler: Reconciler) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, reconciler.stopping.set)
    await reconciler.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.pbx.reconciler", description=__doc__.splitlines()[0])
    parser.add_argument("--worker-id", default=None, help="stable id of this process's leases")
    args = parser.parse_args(argv)
    logs.configure()
    tune_sqlite(db.get_engine())
    # What this process writes (calls, legs) reaches the dashboard's workers as live changes.
    live_bus.start(listen=False)
    asyncio.run(serve(Reconciler(worker_id=args.worker_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
