"""Call recordings: streaming with HTTP ranges (audited), retention and legal holds.

A recording is read with the caller's bearer token, or, for the dashboard's <audio>
element (which cannot send one), with the signed link the side panel made for the tab's
session (``session`` + ``sig``). Either way the session is checked at every request and
the role rules of :func:`services.pbx.recordings.open_for` apply.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from services import accounts
from services.errors import AuthenticationFailed
from services.models import CasePublic
from services.pbx import recordings, retention
from services.storage import RangeNotSatisfiable
from watheeq_ui.api.deps import MAX_ID, AdminDep, IdPath, SessionDep, TokenDep
from watheeq_ui.api.errors import responses
from watheeq_ui.api.files import file_response, parse_range, range_refused

router = APIRouter(prefix="/call-center", tags=["recordings"], responses=responses(401))

_AUDIO = {"schema": {"type": "string", "format": "binary"}}
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole recording (no Range header); Accept-Ranges: bytes", "content": {"audio/wav": _AUDIO, "audio/mpeg": _AUDIO, "audio/ogg": _AUDIO}},
    206: {"description": "The bytes of the Range, with Content-Range: bytes first-last/size", "content": {"audio/wav": _AUDIO, "audio/mpeg": _AUDIO, "audio/ogg": _AUDIO}},
    **responses(401, 404, 416),
}


@router.get("/recordings/{recording_id}", response_class=StreamingResponse, responses=_STREAM_RESPONSES)
def stream_recording(
    session: SessionDep,
    token: TokenDep,
    recording_id: IdPath,
    range_header: Annotated[str | None, Header(alias="range", max_length=100)] = None,
    session_id: Annotated[
        int | None, Query(alias="session", ge=1, le=MAX_ID, description="with sig: the dashboard session a signed link is for")
    ] = None,
    sig: Annotated[str | None, Query(max_length=200, description="the signature of a link the dashboard made (15 minutes)")] = None,
    download: Annotated[bool, Query(description="send as an attachment (audited as a download, not a play)")] = False,
) -> Any:
    """Play or download a call's recording (OWNER/ADMIN/MANAGER, or an agent who was on the
    call; anyone else 404). Supports one HTTP byte range; each request is audited."""
    if token:
        principal = accounts.principal_for_token(session=session, token=token)
    elif session_id is not None and sig:
        principal = recordings.principal_for_link(session=session, session_id=session_id, recording_id=recording_id, signature=sig)
    else:
        raise AuthenticationFailed("not authenticated: send an Authorization: Bearer token")
    start, end = parse_range(range_header)
    try:
        stream = recordings.open_for(
            principal,
            session=session,
            tenant_id=principal.tenant_id,
            recording_id=recording_id,
            start=start,
            end=end,
            action="download" if download else "play",
        )
    except RangeNotSatisfiable as exc:
        return range_refused(exc)
    return file_response(stream, download=download)


# --------------------------------------------------------------------------- retention and legal holds


class RecordingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recording_retention_days: int = Field(
        ge=retention.MIN_RETENTION_DAYS, le=retention.MAX_RETENTION_DAYS, description="recordings older than this are deleted daily"
    )


class LegalHoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    legal_hold: bool = Field(description="true: the case's calls' recordings are never deleted by retention")


@router.get("/recording-settings", response_model=RecordingSettings, responses=responses(403))
def get_recording_settings(session: SessionDep, admin: AdminDep) -> RecordingSettings:
    """How long the firm keeps its recordings (OWNER/ADMIN)."""
    return RecordingSettings(recording_retention_days=retention.retention_days(session=session, tenant_id=admin.tenant_id))


@router.put("/recording-settings", response_model=RecordingSettings, responses=responses(400, 403, 409))
def update_recording_settings(session: SessionDep, admin: AdminDep, data: RecordingSettings) -> RecordingSettings:
    """Set the retention period, 1 to 3650 days (OWNER/ADMIN); 409 until the PBX settings exist."""
    days = retention.set_retention_days(session=session, tenant_id=admin.tenant_id, actor=admin, days=data.recording_retention_days)
    return RecordingSettings(recording_retention_days=days)


@router.get("/legal-holds", response_model=list[CasePublic], responses=responses(403))
def list_legal_holds(
    session: SessionDep, admin: AdminDep, q: Annotated[str, Query(max_length=100, description="also list cases whose title or reference contains this")] = ""
) -> list[CasePublic]:
    """The cases on legal hold, then other cases matching ``q`` (OWNER/ADMIN)."""
    return retention.cases_for_hold(session=session, tenant_id=admin.tenant_id, actor=admin, query=q)


@router.put("/legal-holds/{case_id}", response_model=LegalHoldIn, responses=responses(400, 403, 404))
def set_legal_hold(session: SessionDep, admin: AdminDep, case_id: IdPath, data: LegalHoldIn) -> LegalHoldIn:
    """Put a case on legal hold or release it (OWNER/ADMIN); audited."""
    hold = retention.set_legal_hold(session=session, tenant_id=admin.tenant_id, actor=admin, case_id=case_id, hold=data.legal_hold)
    return LegalHoldIn(legal_hold=hold)

