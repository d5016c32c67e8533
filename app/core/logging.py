"""Structured JSON logs: one line per event on stderr, for every logger of the process (the service's own, and
uvicorn's, RQ's and any library's), bound to the HTTP request (API: `http_request_id`, the request's X-Request-ID)
or the job id (workers). A deletion is `deletion_id` in fields; `http_request_id` never names one.

The service's events: `log_event(log, "deletion.requested", deletion_id=..., model_id=...)` writes
`{"ts", "level", "logger", "event": "deletion.requested", "deletion_id": ..., "model_id": ...}`. Never pass
secrets or raw rows.

Other libraries log printf-style (`log.info("Worker %s: started with PID %d", name, pid)`). Their lines keep
the template as the `event` (the same for every occurrence, so it can be counted and searched) and the values
in `args`, a list (or the mapping, for `%(name)s` templates): the values stay fields instead of being pasted
into a message string. Python warnings and uncaught exceptions become events too (`py.warnings`,
`process.uncaught_exception`).

`request_id_var` is set by the HTTP middleware for each request; `job_id_var` by the worker around each job, so
every line logged while a job runs carries its `job_id`. As a last line of defence, the password of any URL in a
line (`scheme://user:password@host`) is masked.
"""

import json
import logging
import re
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

SERVICE_LOGGERS = ("app", "workers")  # loggers set to Settings.log_level; others keep their own levels
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s\"]*:)[^@\s\"]+@")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # terminal colours some libraries add to their values
_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_log = logging.getLogger("app.process")


def mask_secrets(text: str) -> str:
    """`scheme://user:password@host` becomes `scheme://user:***@host`."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def _plain(value: Any) -> Any:
    """A printf argument as a JSON value: numbers, booleans and None as they are, the rest as text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return _ANSI.sub("", str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # several processes share a container's log (uvicorn processes, a worker)
        }
        if isinstance(fields, dict) or not record.args:
            entry["event"] = _ANSI.sub("", record.getMessage())
        else:  # a printf-style line of another library: the template, and its values as fields
            entry["event"] = _ANSI.sub("", str(record.msg))
            if isinstance(record.args, dict):
                entry["args"] = {str(k): _plain(v) for k, v in record.args.items()}
            else:
                entry["args"] = [_plain(v) for v in record.args]
        request_id = request_id_var.get()
        if request_id:
            entry["http_request_id"] = request_id
        job_id = job_id_var.get()
        if job_id:
            entry["job_id"] = job_id
        if isinstance(fields, dict):
            entry.update(fields)
        else:  # values a library passed with `extra=` (uvicorn's color_message is the message again)
            for key, value in record.__dict__.items():
                if key not in _RESERVED and key not in entry and key != "color_message":
                    entry[key] = _plain(value)
        if record.exc_info:
            entry["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            entry["traceback"] = self.formatException(record.exc_info)
        return mask_secrets(json.dumps(entry, default=str))


def _is_ours(handler: logging.Handler) -> bool:
    return isinstance(handler.formatter, JsonFormatter)


def configure_logging(level: str = "INFO") -> None:
    """Every logger of this process writes JSON lines to stderr through one handler on the root logger
    (idempotent). The service's loggers log at `level`; a library's loggers keep their own levels (uvicorn and
    RQ set theirs from the same setting). Handlers other libraries put on the root logger are replaced, and
    Python warnings and uncaught exceptions (main thread and other threads) are logged as events."""
    root = logging.getLogger()
    if not any(_is_ours(h) for h in root.handlers):
        for handler in [h for h in root.handlers if type(h) is logging.StreamHandler]:
            root.removeHandler(handler)  # a plain-text handler from logging.basicConfig or a library
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    for name in SERVICE_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level.upper())
        logger.propagate = True
        for handler in [h for h in logger.handlers if _is_ours(h)]:
            logger.removeHandler(handler)  # one line per event: the root handler writes it
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    log_event(_log, "process.uncaught_exception", level=logging.CRITICAL, exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    log_event(
        _log,
        "thread.uncaught_exception",
        level=logging.ERROR,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        thread=args.thread.name if args.thread else None,
    )


def log_event(
    logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: Any = False, **fields
) -> None:
    logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)
