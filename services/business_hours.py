"""Each firm's business hours (days, opening and closing time, holidays) in its own time zone,
its callback target and wrap-up time; and the arithmetic the callback queue needs: is the
firm open at an instant, and how many business seconds lie between two instants.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, SQLModel

from services.authz import Permission, require, require_member
from services.errors import Invalid
from services.models import BusinessHours, Principal, Tenant
from services.tenancy import tenant_select

MAX_TARGET_MINUTES = 7 * 24 * 60
MAX_WRAP_UP_S = 3600
MAX_HOLIDAYS = 366


class BusinessHoursIn(SQLModel):
    days: list[int]
    opens: str
    closes: str
    holidays: list[str] = []
    callback_target_minutes: int = 30
    wrap_up_seconds: int = 60


def get_hours(*, session: Session, tenant_id: int) -> BusinessHours:
    """The firm's hours, or the defaults (Sunday–Thursday 09:00–17:00, 30 min, 60 s) unsaved."""
    hours = session.exec(tenant_select(BusinessHours, tenant_id)).first()
    return hours if hours is not None else BusinessHours(tenant_id=tenant_id)


def _clock(value: str, field: str) -> time:
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except (ValueError, AttributeError):
        raise Invalid(field, "a time is HH:MM, 00:00 to 23:59") from None


def set_hours(*, session: Session, tenant_id: int, actor: Principal, data: BusinessHoursIn) -> BusinessHours:
    """OWNER/ADMIN: replaces the firm's hours after checking every field."""
    require(actor, Permission.MANAGE_PBX, tenant_id=tenant_id)
    if not data.days or any(d not in range(7) for d in data.days):
        raise Invalid("days", "days are 0 (Monday) to 6 (Sunday), at least one")
    opens, closes = _clock(data.opens, "opens"), _clock(data.closes, "closes")
    if closes <= opens:
        raise Invalid("closes", "the firm closes after it opens")
    if len(data.holidays) > MAX_HOLIDAYS:
        raise Invalid("holidays", f"at most {MAX_HOLIDAYS} holidays")
    for day in data.holidays:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise Invalid("holidays", f"{day[:20]!r} is not a date (YYYY-MM-DD)") from None
    if not 1 <= data.callback_target_minutes <= MAX_TARGET_MINUTES:
        raise Invalid("callback_target_minutes", "the callback target is 1 minute to one week")
    if not 0 <= data.wrap_up_seconds <= MAX_WRAP_UP_S:
        raise Invalid("wrap_up_seconds", "wrap-up is 0 to 3600 seconds")
    hours = session.exec(tenant_select(BusinessHours, tenant_id)).first() or BusinessHours(tenant_id=tenant_id)
    hours.days = sorted(set(data.days))
    hours.opens, hours.closes = opens.strftime("%H:%M"), closes.strftime("%H:%M")
    hours.holidays = sorted(set(data.holidays))
    hours.callback_target_minutes = data.callback_target_minutes
    hours.wrap_up_seconds = data.wrap_up_seconds
    session.add(hours)
    session.flush()
    return hours


def read_hours(*, session: Session, tenant_id: int, actor: Principal) -> BusinessHours:
    require_member(actor, tenant_id)
    return get_hours(session=session, tenant_id=tenant_id)


def firm_zone(session: Session, tenant_id: int) -> ZoneInfo:
    tenant = session.get(Tenant, tenant_id)
    try:
        return ZoneInfo(tenant.timezone if tenant else "UTC")
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _open_window(hours: BusinessHours, zone: ZoneInfo, day: date) -> tuple[datetime, datetime] | None:
    if day.weekday() not in hours.days or day.isoformat() in hours.holidays:
        return None
    start = datetime.combine(day, _clock(hours.opens, "opens"), zone)
    end = datetime.combine(day, _clock(hours.closes, "closes"), zone)
    return start, end


def is_open(hours: BusinessHours, zone: ZoneInfo, at: datetime) -> bool:
    """Whether the firm is open at ``at`` (its own weekday, clock and holidays)."""
    window = _open_window(hours, zone, at.astimezone(zone).date())
    return window is not None and window[0] <= at < window[1]


def business_seconds(hours: BusinessHours, zone: ZoneInfo, start: datetime, end: datetime) -> int:
    """Open seconds between ``start`` and ``end`` (days walked in the firm's zone)."""
    if end <= start:
        return 0
    total = 0.0
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        window = _open_window(hours, zone, day)
        if window is not None:
            lo, hi = max(window[0], start), min(window[1], end)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return int(total)
