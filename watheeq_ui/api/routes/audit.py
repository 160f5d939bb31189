"""The firm's audit log, read by its owners: who did what to which object, and when."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services import audit
from services.models import AuditEventPublic
from watheeq_ui.api.deps import PrincipalDep, SessionDep
from watheeq_ui.api.errors import responses

router = APIRouter(prefix="/audit", tags=["audit"], responses=responses(401))


@router.get("", response_model=list[AuditEventPublic], responses=responses(403))
def read_audit_log(
    session: SessionDep,
    principal: PrincipalDep,
    action: Annotated[str | None, Query(max_length=64, description="e.g. recording.play, recording.download, call.delete")] = None,
    object_type: Annotated[str | None, Query(max_length=32, description="e.g. call_recording, call, user")] = None,
    object_id: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_LIST)] = 100,
) -> list[AuditEventPublic]:
    """The newest events first (OWNER only), optionally narrowed by action, object and time."""
    return audit.read_log(
        session=session,
        tenant_id=principal.tenant_id,
        actor=principal,
        action=action,
        object_type=object_type,
        object_id=object_id,
        since=since,
        limit=limit,
    )
