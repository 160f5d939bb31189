"""The extensions page: ``state`` holds what the page knows, ``view`` draws it (and registers the route)."""

from watheeq_ui.pages.extensions import view
from watheeq_ui.pages.extensions.state import ExtensionsState

__all__ = ["ExtensionsState", "view"]
