"""The REST app with the live bus running in its worker, as in a Reflex backend worker
(watheeq_ui/live_tabs.py starts it there): for bench/bench_api.py --live-bus."""

from services import live_bus
from watheeq_ui.api.app import api

live_bus.start(listen=True)

__all__ = ["api"]
