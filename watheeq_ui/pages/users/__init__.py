"""The users page: ``state`` holds what the page knows, ``view`` draws it (and registers the route)."""

from watheeq_ui.pages.users import view
from watheeq_ui.pages.users.state import UsersState

__all__ = ["UsersState", "view"]
