"""Files sent over HTTP: one byte range read from the Range header, and the streamed answer
(200 whole, 206 with Content-Range, 416 outside the file), for recordings, WhatsApp media and case files."""

from __future__ import annotations

import re
from typing import Any

from fastapi import status
from fastapi.responses import JSONResponse, StreamingResponse

from services.storage import RangeNotSatisfiable
from services.blobs import BlobStream
from watheeq_ui.api.errors import responses

# One range only ("bytes=first-last", "bytes=first-", "bytes=-suffix"); anything else, a
# list of ranges included, is ignored as RFC 9110 allows and the whole file is sent.
_RANGE = re.compile(r"^bytes=(\d{0,15})-(\d{0,15})$")
_FILE = {"schema": {"type": "string", "format": "binary"}}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The whole file; Accept-Ranges: bytes", "content": {"application/octet-stream": _FILE}},
    206: {"description": "The bytes of the Range, with Content-Range", "content": {"application/octet-stream": _FILE}},
    **responses(401, 404, 416),
}


def parse_range(header: str | None) -> tuple[int | None, int | None]:
    """(first, last) of the header's one range; (None, None) for the whole file."""
    match = _RANGE.match(header.strip()) if header else None
    if match is None or (match[1] == "" and match[2] == ""):
        return None, None
    start = int(match[1]) if match[1] else None
    end = int(match[2]) if match[2] else None
    if start is not None and end is not None and end < start:
        return None, None
    return start, end


def range_refused(exc: RangeNotSatisfiable) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_416_RANGE_NOT_SATISFIABLE,
        content={"detail": str(exc)},
        headers={"Content-Range": f"bytes */{exc.size}", "Accept-Ranges": "bytes"},
    )


def file_response(stream: BlobStream, *, download: bool) -> StreamingResponse:
    ascii_name = stream.filename.encode("ascii", "replace").decode().replace("?", "_")
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(stream.end - stream.start + 1 if stream.size else 0),
        "Content-Disposition": f'{"attachment" if download else "inline"}; filename="{ascii_name}"',
        # Recordings, WhatsApp files and case documents are personal data: kept by no cache.
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    if stream.partial:
        headers["Content-Range"] = f"bytes {stream.start}-{stream.end}/{stream.size}"
    return StreamingResponse(
        stream.chunks, status_code=status.HTTP_206_PARTIAL_CONTENT if stream.partial else status.HTTP_200_OK, media_type=stream.content_type, headers=headers
    )
