"""A case's files as the dashboard shows them: name, size, where each came from, a download link
signed for the tab's session (a link the browser follows sends no bearer token)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

import reflex as rx
from pydantic import BaseModel
from reflex.config import get_config

from services import case_files
from services.models import CaseFilePublic

from watheeq_ui import formatting
from watheeq_ui.i18n import t_fmt


class CaseFileRow(BaseModel):
    id: int
    case_id: int
    name: str
    size: str
    # "whatsapp" (with the direction, number and date of its message) or "upload".
    source: str
    direction: str
    number: str
    at: str
    url: str


def download_url(session_id: int, case_id: int, case_file_id: int) -> str:
    sig = case_files.sign_link(session_id=session_id, case_file_id=case_file_id)
    query = urlencode({"session": session_id, "sig": sig, "download": "true"})
    return f"{get_config().api_url}/api/v1/cases/{case_id}/files/{case_file_id}?{query}"


def case_file_rows(files: Iterable[CaseFilePublic], tz: str, session_id: int) -> list[CaseFileRow]:
    return [
        CaseFileRow(
            id=f.id,
            case_id=f.case_id,
            name=f.name,
            size=formatting.file_size(f.size_bytes),
            source=f.source.value,
            direction=f.source_direction or "",
            number=f.source_number or "",
            at=formatting.local_time(f.source_at or f.saved_at, tz),
            url=download_url(session_id, f.case_id, f.id) if session_id else "",
        )
        for f in files
    ]


def source_text(row: CaseFileRow) -> rx.Var:
    """"WhatsApp from +9665…, 2026-11-30 14:02" (or to, for a file the firm sent), or "Uploaded"."""
    return rx.cond(
        row.source == "whatsapp",
        rx.cond(
            row.direction == "OUTBOUND",
            t_fmt("cf_from_whatsapp_out", number=row.number, at=row.at),
            t_fmt("cf_from_whatsapp_in", number=row.number, at=row.at),
        ),
        t_fmt("cf_uploaded", at=row.at),
    )


def case_file_item(row: CaseFileRow) -> rx.Component:
    return rx.hstack(
        rx.icon("file-text", size=14, color=rx.color("gray", 10)),
        rx.vstack(
            rx.link(row.name, href=row.url, is_external=True, size="2", data_testid="case-file-download"),
            rx.text(source_text(row), size="1", color_scheme="gray", data_testid="case-file-source"),
            spacing="0",
            align="start",
        ),
        rx.spacer(),
        rx.text(row.size, size="1", color_scheme="gray", dir="ltr"),
        width="100%",
        align="center",
        padding_y="0.2rem",
        key=row.id,
        data_testid="case-file",
    )
