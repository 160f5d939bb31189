"""The wallboard scenario (tests/e2e/wallboard_scenario.py) with REDIS_URL and two backend
workers, the manager's wallboard and the agent's queue served by different workers: every
change made through the agent's worker (or the REST API, or another process) reaches the
manager's worker over Redis and shows within a second.

How the two tabs are put on different workers: one origin cannot be pinned to a worker
(Granian hands each new connection to whichever worker accepts it), so the agent's tab is
opened in fresh browser contexts until the page reports a worker pid other than the
manager's (``WATHEEQ_EXPOSE_WORKER=1`` puts the pid serving the tab's websocket in the
page). Both pids are checked to be live children of one server process, and the scenario
checks at its end that neither tab moved to another worker meanwhile."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.wallboard_scenario import Tab, open_signed_in, wallboard_follows_presence_and_the_callback_queue

pytestmark = pytest.mark.e2e

TRIES = 12  # fresh contexts before giving up on landing on the other worker


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_wallboard_follows_an_agent_served_by_another_worker(browser, app, services_db) -> None:
    taken: dict[str, str] = {}  # role -> worker pid

    def on_a_worker_of_its_own(role: str, path: str) -> Tab:
        for _ in range(TRIES):
            tab = open_signed_in(browser, app, role, path)
            pid = tab.page.get_by_test_id("worker-pid")
            expect(pid).not_to_have_text("")
            tab.worker = pid.inner_text()
            assert tab.worker.isdigit(), tab.worker
            if tab.worker not in taken.values():
                taken[role] = tab.worker
                return tab
            tab.context.close()
        raise AssertionError(f"{TRIES} tabs of {role} all landed on worker(s) {sorted(taken.values())}")

    figures = wallboard_follows_presence_and_the_callback_queue(browser, app, services_db, open_tab=on_a_worker_of_its_own)

    print("workers (pid by role):", taken)
    manager_pid, agent_pid = int(taken["MANAGER"]), int(taken["AGENT"])
    assert manager_pid != agent_pid
    # Two workers of one server: siblings under the process that serves the backend's port.
    assert _parent(manager_pid) == _parent(agent_pid), (manager_pid, agent_pid)
    assert figures["away"] < 1.0 and figures["missed"] < 1.0, figures
