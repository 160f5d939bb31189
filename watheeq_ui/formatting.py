"""How figures, durations and times are written on screen.

Values are formatted on the server in the firm's time zone and sent as short strings,
the same in both languages (Western digits, ISO-like dates), so a language switch
changes labels only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def duration(seconds: float | int | None) -> str:
    """``m:ss`` (or ``h:mm:ss``); an em dash when there is nothing to show."""
    if seconds is None:
        return "—"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def percent(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


def count(value: int) -> str:
    return f"{value:,}"


def file_size(size: int | None) -> str:
    """A file's size in KB (at least 1) or MB; "" when unknown."""
    if not size:
        return ""
    if size < 1024 * 1024:
        return f"{max(1, size // 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def local_time(value: datetime | None, tz: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """``value`` in the zone ``tz``; never raises, whatever the stored time.

    A time at the edge of what datetime holds (year 1 or 9999) overflows when moved to
    another zone; one such row must not take the page or the export with it, so it is
    shown as stored, in UTC, marked so.
    """
    if value is None:
        return ""
    try:
        return value.astimezone(ZoneInfo(tz)).strftime(fmt)
    except (OverflowError, ValueError):
        pass
    try:
        return value.strftime(fmt) + (" UTC" if value.utcoffset() == timedelta(0) else "")
    except (OverflowError, ValueError):
        return value.isoformat()
