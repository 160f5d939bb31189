"""The browser end-to-end fixtures of the softphone's test modules: one app, dev PBX and
Chromium per module (see e2e_support.py), and agents signed in through the login page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import unavailable
from tests.softphone import e2e_support as e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[e2e.Stack]:
    reason = e2e.skip_reason()
    if reason:
        unavailable(f"softphone e2e cannot run: {reason}")
    running = e2e.start_stack(tmp_path_factory.mktemp("softphone-e2e"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def browser(stack: e2e.Stack):
    with e2e.chromium(stack) as chromium:
        yield chromium


@pytest.fixture
def login(browser, stack: e2e.Stack):
    contexts = []

    def _login(who: tuple[str, str]) -> e2e.Phone:
        email, extension = who
        context = browser.new_context(viewport=e2e.VIEWPORT)
        contexts.append(context)
        phone = e2e.sign_in(context, email, extension)
        # A binding left by an earlier test's closed page would fork our calls to a dead
        # WebSocket; the registrar drops it within its 5 s timer.
        e2e.wait_until(lambda: stack.pbx.contacts(extension) == 1, 10, f"exactly one binding of {extension}")
        return phone

    yield _login
    for context in contexts:
        for page in context.pages:
            # Unloading the page unregisters (pagehide): no stale binding for the next test.
            page.goto("about:blank")
        context.close()
