"""Structured logs: one JSON object per line, with the request id of the request being served.

``configure()`` is called once by each process (the backend app, the sidecar). The format is
JSON unless ``WATHEEQ_LOG_FORMAT=text`` (easier to read in a terminal while developing). The
request id is set by the API's middleware (``watheeq_ui/api/request_log.py``) in a context
variable, so every log line written while serving that request carries it. Nothing here logs
a query string or a body: tokens and passwords never pass through a log call.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import datetime, timezone

from services import config

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("watheeq_request_id", default=None)

# What a caller may send as X-Request-ID (a proxy's id); anything else is replaced.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def valid_request_id(value: str | None) -> bool:
    return bool(value) and bool(_REQUEST_ID.match(value or ""))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            entry["request_id"] = rid
        # Fields given with ``extra={...}``.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure() -> None:
    """Root logging for this process: JSON lines on stderr (or text), level WATHEEQ_LOG_LEVEL."""
    level = (config.get("WATHEEQ_LOG_LEVEL", "INFO") or "INFO").upper()
    handler = logging.StreamHandler()
    if (config.get("WATHEEQ_LOG_FORMAT") or "json").lower() == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_watheeq", False)]:
        root.removeHandler(old)
    handler._watheeq = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # The app's own loggers go through the root handler only.
    for name in ("watheeq", "services"):
        logging.getLogger(name).setLevel(level)
