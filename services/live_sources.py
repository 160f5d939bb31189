"""Which writes announce a live change: watched at the unit of work, whoever writes.

Every process writes through the one session factory (services/db.py), so a flush that
inserts, changes or deletes a watched row schedules the change with
:func:`services.live.publish_on_commit`: it goes out only once the transaction commits.
Watching the rows rather than each service function means a new writer (the PBX ledger's
ingest, the WhatsApp sidecar's status and messages, an admin disabling a user) cannot forget
to announce what it changed.

What is watched (topic, ref):

- ``Call`` and ``CallLeg`` rows: ``calls`` (the call's id);
- ``WhatsappMessage`` rows: ``whatsapp``; what the page shows of ``WhatsappSession`` (not
  the lease and heartbeat columns the sidecar renews every few seconds): ``whatsapp`` with
  ref :data:`LINE`;
- an ``ApiToken`` revoked, a ``User`` disabled, deleted, or given another role or name:
  ``sessions`` (the user id), so that user's open tabs check their session at once.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session as SaSession

from services import live
from services.models import ApiToken, Call, CallLeg, User, WhatsappMessage, WhatsappSession

# The ref of a change of the WhatsApp line itself (status, QR, phone), not of its messages.
LINE = "line"
# WhatsappSession columns the sidecar rewrites without anything visible changing.
SESSION_HOUSEKEEPING = frozenset({"last_seen_at", "worker_id", "lease_expires_at", "updated_at"})
USER_SHOWN = frozenset({"active", "role", "full_name", "email"})


def _changed(obj: Any, names: frozenset[str] | None = None, *, except_: frozenset[str] = frozenset()) -> bool:
    state = sa.inspect(obj)
    for attr in state.mapper.column_attrs:
        key = attr.key
        if names is not None and key not in names:
            continue
        if key in except_:
            continue
        if state.attrs[key].history.has_changes():
            return True
    return False


def changes_of(obj: Any, *, kind: str) -> tuple[str, Any] | None:
    """The (topic, ref) that writing ``obj`` announces, or None. ``kind``: new, dirty, deleted."""
    if isinstance(obj, Call):
        return "calls", obj.id
    if isinstance(obj, CallLeg):
        return "calls", getattr(obj, "call_id", None)
    if isinstance(obj, WhatsappMessage):
        return "whatsapp", None
    if isinstance(obj, WhatsappSession):
        if kind != "dirty" or _changed(obj, except_=SESSION_HOUSEKEEPING):
            return "whatsapp", LINE
        return None
    if isinstance(obj, ApiToken):
        if kind == "deleted" or (kind == "dirty" and _changed(obj, frozenset({"revoked", "expires_at"}))):
            return "sessions", obj.user_id
        return None
    if isinstance(obj, User):
        if kind == "deleted" or (kind == "dirty" and _changed(obj, USER_SHOWN)):
            return "sessions", obj.id
        return None
    return None


@sa_event.listens_for(SaSession, "after_flush")
def _announce(session: SaSession, _context: Any) -> None:
    # After the flush the new rows have their ids; new/dirty/deleted and the attribute
    # histories still describe what this flush wrote.
    for kind, objects in (("new", session.new), ("dirty", session.dirty), ("deleted", session.deleted)):
        for obj in objects:
            tenant_id = getattr(obj, "tenant_id", None)
            if tenant_id is None:
                continue
            found = changes_of(obj, kind=kind)
            if found is not None:
                live.publish_on_commit(session, tenant_id, found[0], found[1])


# Core statements (bulk inserts and guarded updates) bypass the unit of work's lists: the
# statement names its table and, through ``tenancy.owned_by`` or its values, its firm.
STATEMENT_TOPICS = {"call": "calls", "call_leg": "calls", "whatsapp_message": "whatsapp", "whatsapp_session": "whatsapp"}


def _tenants_of(statement: Any, parameters: Any) -> set[int]:
    found: set[int] = set()
    rows = parameters if isinstance(parameters, list) else [parameters] if isinstance(parameters, dict) else []
    for row in rows:
        if isinstance(row, dict) and row.get("tenant_id") is not None:
            found.add(int(row["tenant_id"]))
    values = getattr(statement, "_values", None) or {}
    for key, value in values.items():
        if getattr(key, "key", key) == "tenant_id" and isinstance(value, sa.sql.elements.BindParameter):
            if value.effective_value is not None:
                found.add(int(value.effective_value))
    for multi in getattr(statement, "_multi_values", None) or ():
        for row in multi:
            if isinstance(row, dict) and row.get("tenant_id") is not None:
                found.add(int(row["tenant_id"]))
    where = getattr(statement, "whereclause", None)
    if where is not None:
        for element in sa.sql.visitors.iterate(where):
            if not isinstance(element, sa.sql.elements.BinaryExpression):
                continue
            left, right = element.left, element.right
            if getattr(left, "key", None) != "tenant_id" or not isinstance(right, sa.sql.elements.BindParameter):
                continue
            value = right.effective_value
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if item is not None:
                    found.add(int(item))
    return found


@sa_event.listens_for(SaSession, "do_orm_execute")
def _announce_statement(state: Any) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    topic = STATEMENT_TOPICS.get(getattr(table, "name", ""))
    if topic is None:
        return
    if table.name == "whatsapp_session" and state.is_update:
        columns = {getattr(k, "key", k) for k in (getattr(state.statement, "_values", None) or {})}
        if columns <= SESSION_HOUSEKEEPING:
            return
    ref = LINE if table.name == "whatsapp_session" else None
    for tenant_id in _tenants_of(state.statement, state.parameters):
        live.publish_on_commit(state.session, tenant_id, topic, ref)
