"""Keyset-paging cursors: one opaque codec for every list paged by (time, id).

A cursor is the position after the last row shown: its time and id, tagged with what it
pages (a sort order of the call history, the WhatsApp messages), so a cursor of one list
or order can never silently page another. Anything else is :class:`Invalid` on ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timedelta, timezone

from services.errors import Invalid

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_CURSOR = re.compile(r"([a-z]{1,8}):(-?[0-9]{1,19}):([0-9]{1,19})")
# The largest 64-bit id: a larger one would fail in the database driver, not here.
_MAX_ID = 2**63 - 1
# Every cursor encode_cursor makes is shorter (tag, 20 and 19 digits, base64); the API bounds
# the query parameter with it.
MAX_CURSOR_LENGTH = 200


def encode_cursor(tag: str, at: datetime, row_id: int) -> str:
    """The cursor after the row (``at``, ``row_id``) of the list named ``tag`` (1-8 letters a-z)."""
    if not re.fullmatch(r"[a-z]{1,8}", tag):
        raise ValueError(f"a cursor tag is 1 to 8 letters a-z, not {tag!r}")
    if at.tzinfo is None:
        raise ValueError("a cursor time carries its time zone")
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{tag}:{micros}:{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tag: str) -> tuple[datetime, int]:
    """The (time in UTC, id) of a cursor made by :func:`encode_cursor` with ``tag``, else :class:`Invalid`."""
    try:
        match = _CURSOR.fullmatch(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
        if match is None or int(match[3]) > _MAX_ID:
            raise ValueError(cursor)
        at = _EPOCH + timedelta(microseconds=int(match[2]))
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, TypeError):
        raise Invalid("cursor", "not a cursor returned by this list") from None
    if match[1] != tag:
        raise Invalid("cursor", "this cursor belongs to another list or sort order")
    return at, int(match[3])
