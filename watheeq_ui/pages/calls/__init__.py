"""The call history page: ``state`` holds what the page knows, ``view`` draws it (and registers the route)."""

from watheeq_ui.pages.calls import view  # noqa: F401  (importing registers the page)
from watheeq_ui.pages.calls.state import CallsState

__all__ = ["CallsState", "view"]
