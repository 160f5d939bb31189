"""The range of times the module accepts, in one place.

A datetime near year 1 or 9999 is valid Python but overflows as soon as it is moved to
another zone (UTC for storage, the firm's zone for display), and one such call in the
log made the firm's whole history and export fail. So times that describe an event
(a call, a message) must fall between :data:`EARLIEST` and a day after now, and times
that only bound a search are clamped (lists) or refused (periods) before use.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from services.errors import Invalid

# No call or message of this module predates it; an earlier one is a wrong clock or input.
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
# Clocks of phones and browsers drift; a day absorbs any real skew and time-zone mix-up.
FUTURE_SLACK = timedelta(days=1)
# Search bounds beyond it can match nothing, and it is far from datetime.max in every zone.
LATEST_SEARCH = datetime(2100, 1, 1, tzinfo=timezone.utc)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(timezone.utc)


def _require_zone(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid(field, "a time zone is required (UTC or an offset)")


def aware(value: datetime | None, field: str) -> datetime | None:
    """``value`` unchanged, or :class:`Invalid` on ``field`` when it carries no time zone (never guessed)."""
    if value is not None:
        _require_zone(value, field)
    return value


def event_time(value: datetime | None, field: str, *, now: datetime | None = None) -> datetime | None:
    """``value`` unchanged when it is a plausible time of an event, else :class:`Invalid` on ``field``.

    Plausible: with a time zone, not before 2000-01-01 and not more than a day ahead of now.
    """
    if value is None:
        return None
    _require_zone(value, field)
    # Comparing aware datetimes never converts them, so the extremes compare without overflow.
    if value < EARLIEST:
        raise Invalid(field, "a time on or after 2000-01-01 is required")
    if value > _now(now) + FUTURE_SLACK:
        raise Invalid(field, "a time in the future is not accepted (more than a day ahead of now)")
    return value.astimezone(timezone.utc)


def reported_time(value: datetime | None, *, now: datetime | None = None) -> datetime:
    """A time reported by someone else's clock (a WhatsApp server, a phone), or now when it is
    missing or implausible: the event happened, only its stamp is wrong, so it is kept, not refused."""
    current = _now(now)
    if value is None or value.tzinfo is None or value.utcoffset() is None:
        return current
    if value < EARLIEST or value > current + FUTURE_SLACK:
        return current
    return value.astimezone(timezone.utc)


def search_bound(value: datetime | None, field: str) -> datetime | None:
    """A bound of a list filter, clamped into [2000-01-01, 2100-01-01] (no row lies outside)."""
    if value is None:
        return None
    _require_zone(value, field)
    if value < EARLIEST:
        return EARLIEST
    if value > LATEST_SEARCH:
        return LATEST_SEARCH
    return value.astimezone(timezone.utc)


def period_bound(value: datetime | None, field: str) -> datetime | None:
    """A bound of a reported period (statistics), which the answer repeats: refused when out of
    [2000-01-01, 2100-01-01] rather than silently changed."""
    if value is None:
        return None
    _require_zone(value, field)
    if not EARLIEST <= value <= LATEST_SEARCH:
        raise Invalid(field, "a date between 2000-01-01 and 2100-01-01 is required")
    return value.astimezone(timezone.utc)


def _user_day(value: str | None, field: str) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise Invalid(field, "a date such as 2025-01-31") from None
    # Later days would overflow once a day is added and the zone applied (year 9999).
    if not 2000 <= day.year <= 2099:
        raise Invalid(field, "a date from 2000-01-01 to 2099-12-31")
    return day


def local_day_range(
    first: str | None, last: str | None, tz: str, *, first_field: str = "date_from", last_field: str = "date_to"
) -> tuple[datetime | None, datetime | None]:
    """Days typed by a user (ISO, both inclusive, either empty) as the half-open range
    [``first`` 00:00, the day after ``last`` 00:00) in the firm's zone ``tz``.

    :class:`Invalid` names the field of a malformed day, a year outside 2000-2099, or a
    ``last`` before ``first``. Service filters treat the end as exclusive.
    """
    start_day = _user_day(first, first_field)
    end_day = _user_day(last, last_field)
    if start_day and end_day and start_day > end_day:
        raise Invalid(last_field, "the end date is on or after the start date")
    zone = ZoneInfo(tz)
    start = datetime.combine(start_day, time(0), tzinfo=zone) if start_day else None
    end = datetime.combine(end_day + timedelta(days=1), time(0), tzinfo=zone) if end_day else None
    return start, end
