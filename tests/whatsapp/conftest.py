"""Fixtures of the WhatsApp tests: a data folder per test and a sidecar factory on the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.whatsapp.sidecar import Settings, Sidecar
from services.whatsapp.simulator import SimulatorGateway


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "data"
    monkeypatch.setenv("WATHEEQ_DATA_DIR", str(folder))
    monkeypatch.setenv("WATHEEQ_WHATSAPP_GATEWAY", "simulator")
    yield folder


def fast_settings(**overrides: object) -> Settings:
    base = dict(
        tick_seconds=0.05,
        lease_seconds=2.0,
        send_rate=0,
        backoff_base=0.2,
        backoff_cap=1.0,
        qr_timeout=160.0,
        health_interval=0.1,
        stop_timeout=5.0,
        # The human pace is off unless a test is about it (tests/whatsapp/test_guardrails.py).
        typing_chars_per_second=0.0,
        gap_min_seconds=0.0,
        gap_max_seconds=0.0,
        first_contact_gap_seconds=0.0,
    )
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


def simulated_sidecar(data: Path, worker_id: str, *, qr_first: float = 60.0, qr_next: float = 20.0, **settings: object) -> Sidecar:
    return Sidecar(
        worker_id=worker_id,
        settings=fast_settings(**settings),
        gateway_factory=lambda sink: SimulatorGateway(
            sink, root=data / "whatsapp" / "simulator", qr_first_seconds=qr_first, qr_next_seconds=qr_next, poll_interval=0.02
        ),
    )
