"""The live wallboard and the callback queue through real browsers, on one backend worker: a
manager's wallboard follows an agent going Away, a missed call and a WhatsApp call joining the
queue within a second, without reload; the agent claims and closes the items and the
wallboard follows (the scenario: wallboard_scenario.py)."""

from __future__ import annotations

import pytest

from tests.e2e.wallboard_scenario import wallboard_follows_presence_and_the_callback_queue

pytestmark = pytest.mark.e2e


def test_the_wallboard_follows_presence_and_the_callback_queue_live(browser, app, services_db) -> None:
    wallboard_follows_presence_and_the_callback_queue(browser, app, services_db)
