"""Who may do what: the roles and named permissions both edges and every service check.

The API's ``AdminDep``, the UI's ``principal_for_page(state, access)`` and the service
guards all ask :func:`allowed` / :func:`require`, so a rule changes here once and
everywhere. A principal of another firm is refused before any role is looked at: it can
only reach a service through a bug at an edge, and serving it would leak that firm's data.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from services.errors import Forbidden

if TYPE_CHECKING:
    from services.models import Principal


class Role(str, enum.Enum):
    OWNER = "OWNER"
    ADMIN = "ADMIN"
    MANAGER = "MANAGER"
    AGENT = "AGENT"


MEMBER_ROLES = frozenset(Role)
SUPERVISOR_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.MANAGER})
ADMIN_ROLES = frozenset({Role.OWNER, Role.ADMIN})
OWNER_ROLES = frozenset({Role.OWNER})


class Permission(str, enum.Enum):
    """What an action needs; :data:`GRANTS` says which roles have it."""

    USE_MODULE = "use the module"
    VIEW_ALL_CALLS = "see every agent's calls"
    LOG_CALLS_FOR_OTHERS = "log a call for another agent"
    DELETE_CALLS = "delete calls"
    EXPORT = "export the call log"
    LIST_EXTENSIONS = "list extensions"
    MANAGE_EXTENSIONS = "assign or delete extensions"
    MANAGE_PBX = "change the PBX settings"
    MANAGE_USERS = "manage users"
    MANAGE_OWNERS = "change an owner's account"
    LINK_WHATSAPP = "link or unlink the WhatsApp line"
    # Agents may play the recordings of calls they were on (services.pbx.recordings).
    PLAY_ANY_RECORDING = "play any call's recording"
    MANAGE_RECORDINGS = "set recording retention and legal holds"
    READ_AUDIT_LOG = "read the audit log"


GRANTS: dict[Permission, frozenset[Role]] = {
    Permission.USE_MODULE: MEMBER_ROLES,
    Permission.VIEW_ALL_CALLS: SUPERVISOR_ROLES,
    Permission.LOG_CALLS_FOR_OTHERS: SUPERVISOR_ROLES,
    Permission.DELETE_CALLS: ADMIN_ROLES,
    Permission.EXPORT: SUPERVISOR_ROLES,
    Permission.LIST_EXTENSIONS: SUPERVISOR_ROLES,
    Permission.MANAGE_EXTENSIONS: ADMIN_ROLES,
    Permission.MANAGE_PBX: ADMIN_ROLES,
    Permission.MANAGE_USERS: ADMIN_ROLES,
    Permission.MANAGE_OWNERS: OWNER_ROLES,
    Permission.LINK_WHATSAPP: ADMIN_ROLES,
    Permission.PLAY_ANY_RECORDING: SUPERVISOR_ROLES,
    Permission.MANAGE_RECORDINGS: ADMIN_ROLES,
    Permission.READ_AUDIT_LOG: OWNER_ROLES,
}

# The UI's page levels (``template(access=...)``, ``principal_for_page(state, access)``).
ACCESS_ROLES: dict[str, frozenset[Role]] = {"member": MEMBER_ROLES, "supervisor": SUPERVISOR_ROLES, "admin": ADMIN_ROLES}


def roles_for(access: Permission | str) -> frozenset[Role]:
    """The roles a permission, or a page level of :data:`ACCESS_ROLES`, admits."""
    if isinstance(access, Permission):
        return GRANTS[access]
    return ACCESS_ROLES[access]


def allowed(principal: Principal, permission: Permission | str, *, tenant_id: int | None = None) -> bool:
    """Whether ``principal`` has ``permission`` (and, when given, belongs to ``tenant_id``)."""
    if tenant_id is not None and principal.tenant_id != tenant_id:
        return False
    return principal.role in roles_for(permission)


def require_member(principal: Principal, tenant_id: int) -> None:
    """:class:`Forbidden` unless ``principal`` belongs to the firm ``tenant_id``."""
    if principal.tenant_id != tenant_id:
        raise Forbidden("you do not belong to this firm")


def require(principal: Principal, permission: Permission, *, tenant_id: int | None = None) -> None:
    """:class:`Forbidden` unless ``principal`` has ``permission`` (in ``tenant_id`` when given)."""
    if tenant_id is not None:
        require_member(principal, tenant_id)
    if not allowed(principal, permission):
        raise Forbidden(f"your role may not {permission.value}")

