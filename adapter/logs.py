"""Logging: one format for every logger (the adapter's and uvicorn's), the request id on every
line, text for people or JSON lines for log collectors (``ADAPTER_LOG_FORMAT``)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from adapter.jsonutil import dumps
from adapter.requestctx import RequestIdFilter

TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
#: Record attributes the standard library sets; anything else on a record is an extra field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request id, and any extra
    fields (the access line's)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return dumps(out).decode()


def configure(level: str, fmt: str) -> None:
    """Set up the root logger once per process (workers call it too)."""
    root = logging.getLogger()
    if any(getattr(h, "_adapter", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._adapter = True  # type: ignore[attr-defined]
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT))
    root.handlers = [handler]
    root.setLevel(level.upper() if level != "trace" else "DEBUG")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
