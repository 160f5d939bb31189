"""The app with several backend workers sharing a Redis, through real browsers: scripts/run.sh
as in tests/e2e, with ``GRANIAN_WORKERS=2``, a private redis-server on a free port (the
machine's Redis and its databases are left alone) and ``WATHEEQ_EXPOSE_WORKER=1`` so a page
tells which worker serves its websocket.

A package of its own: tests/e2e's one-worker app is stopped before this one starts (both
build the frontend in the checkout's .web)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.browser import free_port, unavailable
from tests.e2e.conftest import RunningApp, browser, chromium_installed, running_app, services_on  # noqa: F401

WORKERS = 2


@pytest.fixture(scope="package")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (sudo apt-get install redis-server)")
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(folder / 'redis.log').read_text()[-1000:]}")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="package")
def app(chromium_installed: None, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    extra = {"REDIS_URL": redis_url, "GRANIAN_WORKERS": str(WORKERS), "WATHEEQ_EXPOSE_WORKER": "1"}
    with running_app(tmp_path_factory.mktemp("scaleout"), **extra) as running:
        yield running


@pytest.fixture(scope="package")
def services_db(app: RunningApp):
    """The services on the app's database, publishing on its Redis like any other process."""
    with services_on(app) as db:
        yield db
