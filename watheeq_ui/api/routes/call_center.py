"""Extensions, PBX settings, the call log and call analytics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import Field

from services import call_center
from services.call_center.stats import MAX_SERVICE_LEVEL_THRESHOLD_S
from services.errors import NotFound
from services.pbx import feed
from services.pbx.settings import test_cdr_connection
from services.models import (
    CallBase,
    CallCreate,
    CallDetail,
    CallDirection,
    CallFilters,
    CallLegPublic,
    CallOrder,
    CallPublic,
    CallStats,
    CallStatus,
    CallUpdate,
    CallsPage,
    CdrConnectionResult,
    ExtensionAssign,
    ExtensionPublic,
    PbxFeedHealth,
    PbxSettingsIn,
    PbxSettingsPublic,
    SoftphoneConfig,
    max_length,
)
from services.paging import MAX_CURSOR_LENGTH
from watheeq_ui.api.deps import API_PREFIX, MAX_ID, AdminDep, AuthorisedDep, IdPath, IdQuery, PrincipalDep, SessionDep
from watheeq_ui.api.errors import responses
from watheeq_ui.api.lean import lean_route

router = APIRouter(prefix="/call-center", tags=["call center"], responses=responses(401))

BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
# A day has 86,400 seconds; a week bounds any real call and keeps the column's range.
Seconds = Annotated[int, Field(ge=0, le=7 * 86_400)]


# Request bodies narrow the service DTOs to what the database can hold, so an id or a
# duration out of range is refused with a 422 before it reaches a query.
class ExtensionAssignIn(ExtensionAssign):
    user_id: BodyId


class PbxSettingsUpdate(PbxSettingsIn):
    turn_credential: str | None = Field(
        default=None, description="None keeps the stored credential, an empty string removes it"
    )
    api_password: str | None = Field(
        default=None, description="The UCM API password (write-only): None keeps it, an empty string removes it"
    )
    realtime_port: int | None = Field(default=None, ge=0, le=65535, description="0 clears it; None keeps it")


class CallCreateIn(CallCreate):
    agent_user_id: BodyId | None = None


class CallUpdateIn(CallUpdate):
    ring_seconds: Seconds | None = None
    talk_seconds: Seconds | None = None
    case_id: BodyId | None = None


# --------------------------------------------------------------------------- extensions


@router.get("/extension", response_model=SoftphoneConfig, responses=responses(404, 409))
def get_own_extension(session: SessionDep, principal: PrincipalDep) -> SoftphoneConfig:
    """The caller's own softphone configuration, SIP password included (never anyone else's)."""
    return call_center.get_extension_for_user(
        session=session, tenant_id=principal.tenant_id, user_id=principal.user_id
    )


@router.post("/extension", response_model=ExtensionPublic, responses=responses(400, 403, 404, 409))
def assign_extension(session: SessionDep, admin: AdminDep, data: ExtensionAssignIn) -> ExtensionPublic:
    """Assign a user their extension or change it (OWNER/ADMIN); 409 when the number is taken."""
    return call_center.assign_extension(session=session, tenant_id=admin.tenant_id, actor=admin, data=data)


@router.get("/extensions", response_model=list[ExtensionPublic], responses=responses(403))
def list_extensions(session: SessionDep, principal: PrincipalDep) -> list[ExtensionPublic]:
    """Every extension of the firm (OWNER/ADMIN/MANAGER), without passwords."""
    return call_center.get_extensions(session=session, tenant_id=principal.tenant_id, actor=principal)


@router.delete("/extension/{extension_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(403, 404))
def delete_extension(session: SessionDep, admin: AdminDep, extension_id: IdPath) -> None:
    """Remove an extension (OWNER/ADMIN)."""
    call_center.delete_extension(
        session=session, tenant_id=admin.tenant_id, actor=admin, extension_id=extension_id
    )


# --------------------------------------------------------------------------- PBX settings


@router.get("/pbx-settings", response_model=PbxSettingsPublic, responses=responses(403, 404))
def get_pbx_settings(session: SessionDep, admin: AdminDep) -> PbxSettingsPublic:
    """The firm's PBX connection settings (OWNER/ADMIN); 404 until they are set."""
    settings = call_center.get_pbx_settings(session=session, tenant_id=admin.tenant_id)
    if settings is None:
        raise NotFound("the PBX settings have not been set yet")
    return settings


@router.get("/pbx-settings/feed", response_model=PbxFeedHealth, responses=responses(403, 404))
def get_pbx_feed_health(session: SessionDep, admin: AdminDep) -> PbxFeedHealth:
    """The health of the PBX's call-record feed (OWNER/ADMIN): connected, last record, records
    today, gaps found and filled, last error; 404 until a reconciler has started the feed."""
    health = feed.get_health(session=session, tenant_id=admin.tenant_id)
    if health is None:
        raise NotFound("the PBX's call-record feed has not started")
    return health


@router.put("/pbx-settings", response_model=PbxSettingsPublic, responses=responses(400, 403, 409))
def update_pbx_settings(session: SessionDep, admin: AdminDep, data: PbxSettingsUpdate) -> PbxSettingsPublic:
    """Create or replace the firm's PBX settings (OWNER/ADMIN); the TURN credential is never returned."""
    settings = PbxSettingsIn.model_validate(data.model_dump(exclude={"turn_credential", "api_password"}))
    return call_center.update_pbx_settings(
        session=session,
        tenant_id=admin.tenant_id,
        actor=admin,
        data=settings,
        turn_credential=data.turn_credential,
        api_password=data.api_password,
    )


@router.post("/pbx-settings/test-connection", response_model=CdrConnectionResult, responses=responses(403, 404))
def test_call_record_connection(session: SessionDep, admin: AdminDep) -> CdrConnectionResult:
    """Log in to the firm's call-record source (UCM API or PBX lab) and read one page of records
    (OWNER/ADMIN). A failed connection is a 200 with ``ok`` false and the reason as a sentence."""
    return test_cdr_connection(session=session, tenant_id=admin.tenant_id, actor=admin)


# --------------------------------------------------------------------------- calls


async def log_call(auth: AuthorisedDep, data: CallCreateIn) -> CallPublic:
    """Record a call; the client is matched by number. Logging the same SIP Call-ID again returns that call."""
    # Every call event of every softphone and PBX lands here: the token's check, the work and
    # the commit in one thread hand-over (AuthorisedDep).
    return await auth.run_grouped(
        lambda session, principal: call_center.log_call(session=session, tenant_id=principal.tenant_id, actor=principal, data=data)
    )


# POST /calls is declared like this router's routes (same path, tags, refusals) but is not one
# of them: the app matches it before any router and it is a LeanRoute (watheeq_ui/api/lean.py).
log_call_route = lean_route(
    router,
    API_PREFIX,
    "/calls",
    log_call,
    methods=["POST"],
    response_model=CallPublic,
    status_code=status.HTTP_201_CREATED,
    responses=responses(400, 403, 404, 409),
)


@router.get("/calls", response_model=CallsPage)
def list_calls(
    session: SessionDep,
    principal: PrincipalDep,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    direction: CallDirection | None = None,
    status_: Annotated[list[CallStatus] | None, Query(alias="status", max_length=len(CallStatus))] = None,
    agent_user_id: IdQuery = None,
    client_id: IdQuery = None,
    number: Annotated[str | None, Query(max_length=max_length(CallBase, "remote_number"))] = None,
    cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH, description="next_cursor of the previous page")] = None,
    page: Annotated[int | None, Query(ge=1, le=1_000_000, description="page number, when not using a cursor")] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    sort: Annotated[
        Literal["-started_at", "started_at"],
        Query(description="-started_at: newest first; started_at: oldest first. A cursor pages only its own order."),
    ] = "-started_at",
) -> CallsPage:
    """The call history by start time, newest first unless sorted otherwise; agents see their own calls."""
    filters = CallFilters(
        date_from=date_from,
        date_to=date_to,
        direction=direction,
        statuses=status_ or [],
        agent_user_id=agent_user_id,
        client_id=client_id,
        number=number,
    )
    return call_center.get_call_history(
        session=session,
        tenant_id=principal.tenant_id,
        actor=principal,
        filters=filters,
        cursor=cursor,
        page=page,
        page_size=page_size,
        order=_CALL_ORDERS[sort],
    )


_CALL_ORDERS = {"-started_at": CallOrder.NEWEST_FIRST, "started_at": CallOrder.OLDEST_FIRST}


@router.get("/calls/{call_id}", response_model=CallDetail, responses=responses(404))
def get_call(session: SessionDep, principal: PrincipalDep, call_id: IdPath) -> CallDetail:
    """One call with its notes and recordings."""
    return call_center.get_call(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id)


@router.get("/calls/{call_id}/legs", response_model=list[CallLegPublic], responses=responses(404))
def get_call_legs(session: SessionDep, principal: PrincipalDep, call_id: IdPath) -> list[CallLegPublic]:
    """The PBX's legs of one call: each agent rung (for how long, answered or not), transfers,
    and who talked how long; empty until the PBX's record of the call is in."""
    return call_center.get_call_legs(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id)


@router.patch("/calls/{call_id}", response_model=CallDetail, responses=responses(400, 404, 409))
def update_call(session: SessionDep, principal: PrincipalDep, call_id: IdPath, data: CallUpdateIn) -> CallDetail:
    """Move a call along its states and/or add a note and link a case; all of it or none of it."""
    call_center.update_call_status(
        session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id, data=data
    )
    return call_center.get_call(session=session, tenant_id=principal.tenant_id, actor=principal, call_id=call_id)


@router.delete("/calls/{call_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(403, 404))
def delete_call(session: SessionDep, admin: AdminDep, call_id: IdPath) -> None:
    """Delete a call logged in error, with its notes (OWNER/ADMIN); recorded in the audit log."""
    call_center.delete_call(session=session, tenant_id=admin.tenant_id, actor=admin, call_id=call_id)


@router.get("/stats", response_model=CallStats)
def get_stats(
    session: SessionDep,
    principal: PrincipalDep,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    service_level_threshold: Annotated[
        int, Query(ge=0, le=MAX_SERVICE_LEVEL_THRESHOLD_S, description="seconds within which an answered inbound call counts as in service level")
    ] = 20,
) -> CallStats:
    """Call analytics for a range (default: today in the firm's time zone)."""
    return call_center.get_stats(
        session=session,
        tenant_id=principal.tenant_id,
        actor=principal,
        date_from=date_from,
        date_to=date_to,
        service_level_threshold_s=service_level_threshold,
    )
