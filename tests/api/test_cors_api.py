"""Cross-origin calls: only the app's own frontend (or configured origins) may use a session.

Reflex installs CORS on the API app it is handed (``App._add_cors``, from rxconfig's
``cors_allowed_origins``); its default ``*`` with credentials reflected any Origin. These
tests wrap the API exactly as Reflex does, with the project's rxconfig loaded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from reflex.app import App
from reflex_base.config import reload_config
from starlette.applications import Starlette
from starlette.testclient import TestClient

from services import config
from watheeq_ui.api.app import api

EVIL = "https://evil.example"


def _served(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[TestClient]:
    monkeypatch.delenv("WATHEEQ_CORS_ORIGINS", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reload_config()
    try:
        # What Reflex does with an api_transformer: CORS on it, Reflex's own app mounted inside.
        outer = Starlette()
        App._add_cors(outer)
        outer.mount("", api)
        with TestClient(outer) as client:
            yield client
    finally:
        monkeypatch.undo()
        reload_config()


@pytest.fixture
def default_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from _served(monkeypatch, WATHEEQ_FRONTEND_PORT="3123")


@pytest.fixture
def configured_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from _served(monkeypatch, WATHEEQ_CORS_ORIGINS="https://app.lawfirm.example, https://ops.lawfirm.example")


def _preflight(client: TestClient, origin: str):
    return client.options(
        "/api/v1/auth/me",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
    )


def test_another_sites_origin_is_never_reflected(default_app: TestClient) -> None:
    simple = default_app.get("/api/v1/health", headers={"Origin": EVIL, "Cookie": "a=b"})
    assert "access-control-allow-origin" not in simple.headers
    preflight = _preflight(default_app, EVIL)
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers


def test_the_apps_own_frontend_may_call_with_credentials(default_app: TestClient) -> None:
    for origin in ("http://localhost:3123", "http://127.0.0.1:3123"):
        r = _preflight(default_app, origin)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == origin
        assert r.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in _preflight(default_app, "http://localhost:3000").headers


def test_configured_origins_replace_the_default(configured_app: TestClient) -> None:
    r = configured_app.get("/api/v1/health", headers={"Origin": "https://ops.lawfirm.example"})
    assert r.headers["access-control-allow-origin"] == "https://ops.lawfirm.example"
    for origin in ("http://localhost:3000", EVIL, "https://app.lawfirm.example.evil.example"):
        assert "access-control-allow-origin" not in _preflight(configured_app, origin).headers


@pytest.mark.parametrize("value", ["*", "https://a.example, *", "app.example.com", "https://a.example/path", " , "])
def test_a_wildcard_or_malformed_origin_setting_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WATHEEQ_CORS_ORIGINS", value)
    with pytest.raises(ValueError, match="WATHEEQ_CORS_ORIGINS"):
        config.cors_origins()
