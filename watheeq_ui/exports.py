"""CSV exports of the call history: built in a background task, downloaded once by ticket.

The file is written in chunks (one service page at a time, through pandas) so 100,000
rows never sit in memory or cross the websocket. The ticket is the file's random name:
it is handed only to the browser that asked for the export, expires after a few
minutes and is deleted once downloaded. Files live on disk, not in process memory, so
the download works whichever backend worker serves it.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
from reflex.config import get_config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from services import call_center, config, db
from services.models import CallFilters, CallOrder, CallPublic, Principal
from watheeq_ui import formatting

DOWNLOAD_PATH = "/_export"
TICKET_TTL_S = 10 * 60
CHUNK_ROWS = 500
_TICKET = re.compile(r"^[A-Za-z0-9_-]{32,72}$")

COLUMNS = [
    "id",
    "started_at",
    "direction",
    "status",
    "remote_number",
    "remote_e164",
    "agent",
    "extension",
    "client",
    "case",
    "ring_seconds",
    "talk_seconds",
    "answered_at",
    "ended_at",
    "hangup_cause",
    "notes",
]


def export_dir() -> Path:
    path = Path(config.get("WATHEEQ_EXPORT_DIR") or config.PROJECT_ROOT / "data" / "exports")
    path.mkdir(parents=True, exist_ok=True)
    return path


# A spreadsheet runs a cell starting with one of these as a formula (=HYPERLINK(...) that
# leaks data, DDE that runs a command); tab and CR are read as such a start too.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain signed number ("+966501234567", "-5") is no formula: it stays as written.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_INTEGER_COLUMNS = ("id", "ring_seconds", "talk_seconds")


def _cell(value: str | None) -> str:
    """Text as a spreadsheet shows it and never evaluates: a leading quote on formula starts."""
    text = value or ""
    if text.startswith(_FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def _local(value, tz: str) -> str:
    return formatting.local_time(value, tz, "%Y-%m-%d %H:%M:%S")


def _frame(rows: list[CallPublic], tz: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        [
            {
                "id": c.id,
                "started_at": _local(c.started_at, tz),
                "direction": c.direction.value,
                "status": c.status.value,
                "remote_number": _cell(c.remote_number),
                "remote_e164": _cell(c.remote_e164),
                "agent": _cell(c.agent_name),
                "extension": _cell(c.extension),
                "client": _cell(c.client_name),
                "case": _cell(c.case_title),
                "ring_seconds": c.ring_seconds,
                "talk_seconds": c.talk_seconds,
                "answered_at": _local(c.answered_at, tz),
                "ended_at": _local(c.ended_at, tz),
                "hangup_cause": _cell(c.hangup_cause),
                "notes": _cell(c.notes),
            }
            for c in rows
        ],
        columns=COLUMNS,
    )
    # Nullable integers: a column with a missing value would otherwise turn float ("12.0").
    return frame.astype({name: "Int64" for name in _INTEGER_COLUMNS})


def _purge_expired(directory: Path) -> None:
    horizon = time.time() - TICKET_TTL_S
    for path in directory.glob("*.csv"):
        try:
            if path.stat().st_mtime < horizon:
                path.unlink(missing_ok=True)
        except OSError:
            continue


def write_history_csv(
    *,
    principal: Principal,
    filters: CallFilters,
    timezone: str,
    progress: Callable[[int, int], None],
    order: CallOrder = CallOrder.NEWEST_FIRST,
) -> tuple[str, int]:
    """Write the filtered history, in ``order`` as on screen, to a new export file; returns (ticket, rows written).

    Walks the history with the service's cursor, so every row is read once and the
    result is consistent even while new calls arrive.
    """
    directory = export_dir()
    _purge_expired(directory)
    ticket = secrets.token_urlsafe(32)
    target = directory / f"{ticket}.csv"
    partial = directory / f"{ticket}.part"
    written = 0
    cursor: str | None = None
    try:
        with partial.open("w", encoding="utf-8-sig", newline="") as out:
            first = True
            while True:
                with db.session_scope() as session:
                    page = call_center.get_call_history(
                        session=session,
                        tenant_id=principal.tenant_id,
                        actor=principal,
                        filters=filters,
                        cursor=cursor,
                        page_size=CHUNK_ROWS,
                        order=order,
                    )
                # CRLF rows (RFC 4180): the writer then quotes every cell holding a CR or an LF,
                # so a bare CR in a note cannot start a new row.
                _frame(page.data, timezone).to_csv(out, header=first, index=False, lineterminator="\r\n")
                first = False
                written += len(page.data)
                # A number search counts up to a bound: past it, the total grows as rows come.
                progress(written, max(page.count, written + bool(page.next_cursor)) if page.count_is_lower_bound else page.count)
                if not page.next_cursor:
                    break
                cursor = page.next_cursor
        partial.rename(target)
    finally:
        partial.unlink(missing_ok=True)
    return ticket, written


def write_report_csv(kind: str, rows: list[dict], columns: list[str]) -> str:
    """A small report (agents × days) as an export file; returns its ticket. Text cells are
    neutralised like the history's (:func:`_cell`); ``kind`` names the downloaded file."""
    directory = export_dir()
    _purge_expired(directory)
    ticket = f"{kind}-{secrets.token_urlsafe(32)}"
    frame = pd.DataFrame([{k: _cell(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows], columns=columns)
    partial = directory / f"{ticket}.part"
    try:
        with partial.open("w", encoding="utf-8-sig", newline="") as out:
            frame.to_csv(out, index=False, lineterminator="\r\n")
        partial.rename(directory / f"{ticket}.csv")
    finally:
        partial.unlink(missing_ok=True)
    return ticket


REPORT_KINDS = ("agents", "callbacks")


def download_script(ticket: str) -> str:
    """Browser code that downloads ``ticket`` from the backend (the page stays where it is)."""
    api_url = get_config().api_url
    # As Reflex does for its own websocket: a loopback backend URL means "the host the page came from".
    return (
        f"const u = new URL({api_url!r});"
        "if (['localhost','127.0.0.1','0.0.0.0','::1'].includes(u.hostname)) u.hostname = window.location.hostname;"
        f"window.location.assign(u.origin + '{DOWNLOAD_PATH}/{ticket}');"
    )


async def _download(request: Request):
    ticket = request.path_params["ticket"]
    if not _TICKET.match(ticket):
        return PlainTextResponse("not found", status_code=404)
    path = export_dir() / f"{ticket}.csv"
    try:
        fresh = time.time() - path.stat().st_mtime < TICKET_TTL_S
    except OSError:
        return PlainTextResponse("not found", status_code=404)
    if not fresh:
        path.unlink(missing_ok=True)
        return PlainTextResponse("not found", status_code=404)
    try:
        handle = path.open("rb")
    except OSError:
        return PlainTextResponse("not found", status_code=404)
    # Single use: the name goes now, the open handle keeps the bytes readable. Not a
    # FileResponse with a delete in its background task: granian sends files by path
    # (ASGI pathsend) after the task has run, and then finds nothing.
    path.unlink(missing_ok=True)
    size = os.fstat(handle.fileno()).st_size
    kind = ticket.split("-", 1)[0]
    filename = time.strftime(f"watheeq-{kind if kind in REPORT_KINDS else 'calls'}-%Y%m%d-%H%M.csv")
    return StreamingResponse(
        _read_and_close(handle),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"', "content-length": str(size)},
    )


def _read_and_close(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(64 * 1024):
            yield chunk


download_app = Starlette(routes=[Route(DOWNLOAD_PATH + "/{ticket}", _download, methods=["GET"])])
