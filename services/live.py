"""Live updates: a service says "this firm's X changed"; every backend worker has ONE listener
that fans the change out to its own browsers, which then re-read what they show.

Pushed, never polled per tab (DESIGN.md). A change carries no data, only what changed (the
firm, a topic, an optional reference such as a user or call id): a browser re-reads through
the services with its own session, so a change can never leak another firm's or another
user's data, and a lost change costs at most one stale screen until the next one.

Topics: ``calls`` (a call row appeared or changed), ``whatsapp`` (the line's status or its
messages), ``agents`` (an agent's presence state), ``callbacks`` (the callback queue),
``sessions`` (a user's sessions were revoked or the user disabled: ``ref`` is the user id).

Transport: in this process always; across processes (the sidecar and reconciler write from
their own processes, several backend workers each have browsers) through the bus named by the
deployment: Redis pub/sub with ``REDIS_URL``, PostgreSQL LISTEN/NOTIFY on PostgreSQL, and on
the embedded SQLite default a per-worker reader of the ``live_change`` log. ``publish`` is
called after the commit that made the change true.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as SaSession

log = logging.getLogger("watheeq.live")

TOPICS = frozenset({"calls", "whatsapp", "agents", "callbacks", "sessions"})


@dataclass(frozen=True)
class Change:
    tenant_id: int
    topic: str
    ref: str | None = None
    at: float = field(default_factory=time.time)


Listener = Callable[[Change], None]

_listeners: list[Listener] = []
_lock = threading.Lock()
# Set by the cross-process bus when one is running in this process (services.live_bus).
_forward: Callable[[Change], None] | None = None


def subscribe(listener: Listener) -> Callable[[], None]:
    """Calls ``listener(change)`` for every change seen by this process; returns the
    unsubscribe function. Listeners must be quick and must not raise (errors are logged)."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def deliver(change: Change) -> None:
    """Hands ``change`` to this process's listeners (the bus calls it for remote changes)."""
    with _lock:
        targets = list(_listeners)
    for listener in targets:
        try:
            listener(change)
        except Exception:  # one broken listener must not starve the others
            log.exception("live listener failed on %s/%s", change.topic, change.tenant_id)


def publish(tenant_id: int, topic: str, ref: str | int | None = None) -> None:
    """Announces that ``topic`` of firm ``tenant_id`` changed (after the commit)."""
    if topic not in TOPICS:
        raise ValueError(f"unknown live topic {topic!r}")
    change = Change(tenant_id=tenant_id, topic=topic, ref=None if ref is None else str(ref))
    if _forward is not None:
        # The bus delivers it back to this process too, in order with remote changes.
        _forward(change)
    else:
        deliver(change)


def publish_on_commit(session: Any, tenant_id: int, topic: str, ref: str | int | None = None) -> None:
    """Publishes once ``session``'s transaction commits (nothing if it rolls back).

    Services call this inside the unit of work that makes the change, so a change is never
    announced before it is readable, nor for work that was undone. Repeats are sent once.
    """
    if topic not in TOPICS:
        raise ValueError(f"unknown live topic {topic!r}")
    pending = session.info.setdefault(_PENDING, {})
    pending[(tenant_id, topic, None if ref is None else str(ref))] = None


_PENDING = "watheeq_live_pending"


# Set by a bus that can write a change in the very transaction that makes it (services.live_bus:
# SQLite's live_change log): called before the commit with the session and its changes, it
# returns True when it wrote them, and they are not published again after the commit. One
# commit per write instead of two, and a change is in the log exactly when its write is.
_in_transaction: Callable[[Any, list[Change]], bool] | None = None


@sa_event.listens_for(SaSession, "before_commit")
def _write_pending_with_the_commit(session: SaSession) -> None:
    writer = _in_transaction
    if writer is None:
        return
    # The commit's own flush could still announce changes: flush first (a no-op when clean).
    session.flush()
    pending = session.info.get(_PENDING)
    if pending and writer(session, [Change(tenant_id=t, topic=o, ref=r) for t, o, r in pending]):
        session.info.pop(_PENDING, None)


@sa_event.listens_for(SaSession, "after_commit")
def _publish_pending(session: SaSession) -> None:
    pending = session.info.pop(_PENDING, None)
    for tenant_id, topic, ref in pending or ():
        try:
            publish(tenant_id, topic, ref)
        except Exception:  # the commit stands; a lost change costs one stale screen
            log.exception("publishing %s/%s failed", topic, tenant_id)


@sa_event.listens_for(SaSession, "after_rollback")
def _drop_pending(session: SaSession) -> None:
    session.info.pop(_PENDING, None)


def set_forward(
    forward: Callable[[Change], None] | None, in_transaction: Callable[[Any, list[Change]], bool] | None = None
) -> None:
    """Installed by the cross-process bus of this process (None: in-process only); with
    ``in_transaction`` when the bus can also write changes inside the committing transaction."""
    global _forward, _in_transaction
    _forward = forward
    _in_transaction = in_transaction
