"""services.live: the in-process part of the live-update bus."""

from __future__ import annotations

import pytest

from services import live


def test_published_changes_reach_every_listener_until_it_unsubscribes() -> None:
    seen_a: list[live.Change] = []
    seen_b: list[live.Change] = []
    stop_a = live.subscribe(seen_a.append)
    stop_b = live.subscribe(seen_b.append)
    try:
        live.publish(7, "calls", ref=42)
        stop_a()
        live.publish(7, "whatsapp")
    finally:
        stop_b()
    assert [(c.tenant_id, c.topic, c.ref) for c in seen_a] == [(7, "calls", "42")]
    assert [(c.topic, c.ref) for c in seen_b] == [("calls", "42"), ("whatsapp", None)]


def test_a_failing_listener_does_not_starve_the_others() -> None:
    seen: list[live.Change] = []

    def broken(change: live.Change) -> None:
        raise RuntimeError("boom")

    stops = [live.subscribe(broken), live.subscribe(seen.append)]
    try:
        live.publish(1, "agents", ref=3)
    finally:
        for stop in stops:
            stop()
    assert len(seen) == 1


def test_unknown_topics_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown live topic"):
        live.publish(1, "everything")
