"""Structured JSON logs: one line per event, a dotted event name plus key/value fields, bound to the HTTP request
(API: `http_request_id`, the request's X-Request-ID) or the job id (workers). A deletion is `deletion_id` in fields;
`http_request_id` never names one.

Usage: `log_event(log, "deletion.requested", deletion_id=..., model_id=...)`. Never pass secrets or raw rows.
`request_id_var` is set by the HTTP middleware for each request; `job_id_var` by the worker around each job, so
every line logged while a job runs carries its `job_id`. As a last line of defence, the password of any URL in a
line (`scheme://user:password@host`) is masked.
"""

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"]*:)[^@\s\"]+@")


def mask_secrets(text: str) -> str:
    """`scheme://user:password@host` becomes `scheme://user:***@host`."""
    return _URL_PASSWORD.sub(r"\1***@", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["http_request_id"] = request_id
        job_id = job_id_var.get()
        if job_id:
            entry["job_id"] = job_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(entry, default=str))


def configure_logging(level: str = "INFO") -> None:
    """Send the app's loggers to stderr as JSON lines (idempotent)."""
    root = logging.getLogger("app")
    root.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
        root.propagate = False


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: bool = False, **fields):
    logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)
