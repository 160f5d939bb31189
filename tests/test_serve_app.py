"""scripts/serve_app.py: the built frontend's hashed files cacheable, its pages revalidated."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]


def _serve_app():
    spec = importlib.util.spec_from_file_location("serve_app_under_test", ROOT / "scripts" / "serve_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "root-C5UPtjb1.js").write_text("export {};")
    (tmp_path / "index.html").write_text("<!DOCTYPE html><title>Watheeq</title>")
    return tmp_path


def test_hashed_assets_are_cacheable_and_pages_revalidated(tmp_path, monkeypatch):
    serve_app = _serve_app()
    from reflex.utils import exec as reflex_exec

    directory = _built(tmp_path)
    monkeypatch.setattr(reflex_exec, "get_frontend_mount", lambda *a, **k: Mount("/", app=StaticFiles(directory=directory, html=True)))
    serve_app._patch_frontend_mount()
    client = TestClient(Starlette(routes=[reflex_exec.get_frontend_mount()]))

    asset = client.get("/assets/root-C5UPtjb1.js")
    assert asset.status_code == 200 and asset.text == "export {};"
    assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    page = client.get("/")
    assert page.status_code == 200 and "Watheeq" in page.text
    assert page.headers["cache-control"] == "no-cache"
    # A revalidated page still answers 304 to its ETag, with the same header.
    again = client.get("/", headers={"if-none-match": page.headers["etag"]})
    assert again.status_code == 304 and again.headers["cache-control"] == "no-cache"
    assert client.get("/assets/missing-00000000.js").status_code == 404


def test_without_the_patch_reflex_sends_no_cache_control(tmp_path):
    # What the patch is for: Starlette's static files (under Reflex's mount) name no lifetime.
    client = TestClient(Starlette(routes=[Mount("/", app=StaticFiles(directory=_built(tmp_path), html=True))]))
    assert "cache-control" not in client.get("/assets/root-C5UPtjb1.js").headers
