"""Live operations: agent states, the callback queue and the firm's business hours."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from services import business_hours, callbacks, live_reports, presence
from services.business_hours import BusinessHoursIn
from services.models import (
    AgentStateIn,
    AgentStatePublic,
    CallbackClose,
    CallbackMissIn,
    CallbackPublic,
)
from watheeq_ui.api.deps import AdminDep, IdPath, PrincipalDep, SessionDep
from watheeq_ui.api.errors import responses

router = APIRouter(prefix="/call-center", tags=["live operations"], responses=responses(401))


class BusinessHoursPublic(BusinessHoursIn):
    pass


class BusinessHoursUpdate(BusinessHoursIn):
    days: Annotated[list[Annotated[int, Field(ge=0, le=6)]], Field(min_length=1, max_length=7)]
    holidays: Annotated[list[Annotated[str, Field(max_length=10)]], Field(max_length=366)] = []
    callback_target_minutes: Annotated[int, Field(ge=1, le=7 * 24 * 60)] = 30
    wrap_up_seconds: Annotated[int, Field(ge=0, le=3600)] = 60


class CallbackMissCreate(CallbackMissIn):
    number: Annotated[str, Field(min_length=1, max_length=64)]


@router.get("/agents/states", response_model=list[AgentStatePublic], responses=responses(403))
def list_agent_states(session: SessionDep, principal: PrincipalDep) -> list[AgentStatePublic]:
    """Every active user's state now, time in state from ``since`` (OWNER/ADMIN/MANAGER; an
    agent gets only their own)."""
    return presence.list_states(session=session, tenant_id=principal.tenant_id, actor=principal)


@router.put("/agents/me/state", response_model=AgentStatePublic, responses=responses(400, 409, 422))
def set_my_state(session: SessionDep, principal: PrincipalDep, data: AgentStateIn) -> AgentStatePublic:
    """Set yourself AVAILABLE, or AWAY with a reason (BREAK, MEETING, COURT); 409 during a call
    (the phone reports ringing, calls and wrap-up itself)."""
    return presence.set_own_state(
        session=session, tenant_id=principal.tenant_id, actor=principal, status=data.status, reason=data.reason
    )


@router.get("/callbacks", response_model=list[CallbackPublic], responses=responses(403))
def list_callbacks(
    session: SessionDep, principal: PrincipalDep, include_closed: Annotated[bool, Query()] = False
) -> list[CallbackPublic]:
    """The callback queue, oldest miss first; ``over_target`` marks items waiting longer than
    the firm's callback target in business time."""
    return callbacks.list_callbacks(
        session=session, tenant_id=principal.tenant_id, actor=principal, include_closed=include_closed
    )


@router.post("/callbacks", response_model=CallbackPublic, status_code=201, responses=responses(400, 403, 422))
def report_miss(session: SessionDep, principal: PrincipalDep, data: CallbackMissCreate) -> CallbackPublic:
    """Report a missed contact (a WhatsApp call, a call from another system): it joins the
    number's open item (its count grows) or opens one."""
    return callbacks.record_miss(session=session, tenant_id=principal.tenant_id, actor=principal, data=data)


@router.post("/callbacks/{callback_id}/claim", response_model=CallbackPublic, responses=responses(403, 404, 409))
def claim_callback(session: SessionDep, principal: PrincipalDep, callback_id: IdPath) -> CallbackPublic:
    """Take the item: others see it claimed; 409 when another agent holds it or it is closed.
    Your next call to its number is linked to it as the callback."""
    return callbacks.claim(session=session, tenant_id=principal.tenant_id, actor=principal, callback_id=callback_id)


@router.post("/callbacks/{callback_id}/close", response_model=CallbackPublic, responses=responses(400, 403, 404, 409, 422))
def close_callback(session: SessionDep, principal: PrincipalDep, callback_id: IdPath, data: CallbackClose) -> CallbackPublic:
    """Close the item with an outcome (REACHED, NO_ANSWER, WRONG_NUMBER); 409 when another agent
    holds it (a supervisor may close any) or it is closed already."""
    return callbacks.close(
        session=session, tenant_id=principal.tenant_id, actor=principal, callback_id=callback_id, outcome=data.outcome
    )


@router.get("/business-hours", response_model=BusinessHoursPublic, responses=responses(403))
def get_business_hours(session: SessionDep, principal: PrincipalDep) -> BusinessHoursPublic:
    """The firm's business hours (defaults until set), callback target and wrap-up seconds."""
    hours = business_hours.read_hours(session=session, tenant_id=principal.tenant_id, actor=principal)
    return BusinessHoursPublic.model_validate(hours.model_dump())


@router.put("/business-hours", response_model=BusinessHoursPublic, responses=responses(400, 403, 422))
def set_business_hours(session: SessionDep, admin: AdminDep, data: BusinessHoursUpdate) -> BusinessHoursPublic:
    """Replace the firm's business hours (OWNER/ADMIN): days 0 (Monday) to 6, HH:MM, holidays as dates."""
    hours = business_hours.set_hours(session=session, tenant_id=admin.tenant_id, actor=admin, data=data)
    return BusinessHoursPublic.model_validate(hours.model_dump())


@router.get("/reports/agents", response_model=list[live_reports.AgentDayRow], responses=responses(403, 422))
def agent_report(
    session: SessionDep, principal: PrincipalDep, date_from: Annotated[date, Query()], date_to: Annotated[date, Query()]
) -> list[live_reports.AgentDayRow]:
    """Per agent per day (the firm's zone, at most 31 days): seconds in each state, calls
    handled, callbacks made, outcomes of the items closed (OWNER/ADMIN/MANAGER)."""
    return live_reports.agent_report(session=session, tenant_id=principal.tenant_id, actor=principal, date_from=date_from, date_to=date_to)


@router.get("/reports/callback-times", response_model=list[live_reports.CallbackTimeRow], responses=responses(403, 422))
def callback_time_report(
    session: SessionDep, principal: PrincipalDep, date_from: Annotated[date, Query()], date_to: Annotated[date, Query()]
) -> list[live_reports.CallbackTimeRow]:
    """Per day of the first miss: items, items called back, p50/p90 seconds from miss to first callback."""
    return live_reports.callback_times(session=session, tenant_id=principal.tenant_id, actor=principal, date_from=date_from, date_to=date_to)
