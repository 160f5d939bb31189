"""The export download: a ticket is single use, and nothing but a ticket is served."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from watheeq_ui import exports

TICKET = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("WATHEEQ_EXPORT_DIR", str(tmp_path))
    return TestClient(exports.download_app)


def test_a_ticket_downloads_its_file_once(client, tmp_path):
    (tmp_path / f"{TICKET}.csv").write_text("id,status\n1,MISSED\n", encoding="utf-8")
    first = client.get(f"{exports.DOWNLOAD_PATH}/{TICKET}")
    assert first.status_code == 200
    assert first.text == "id,status\n1,MISSED\n"
    assert first.headers["content-disposition"].startswith("attachment;")
    assert client.get(f"{exports.DOWNLOAD_PATH}/{TICKET}").status_code == 404
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("ticket", ["short", "..%2F..%2Fetc%2Fpasswd", TICKET + "!"])
def test_anything_but_a_ticket_is_not_found(client, tmp_path, ticket):
    (tmp_path / f"{TICKET}.csv").write_text("x", encoding="utf-8")
    assert client.get(f"{exports.DOWNLOAD_PATH}/{ticket}").status_code == 404
    assert (tmp_path / f"{TICKET}.csv").exists()
