"""Structured logs with a request id.

Every request gets an id: the caller's `X-Request-ID` when it is sane (a load balancer or
nginx may set one), else a new one. It is returned in the `X-Request-ID` response header and
added to every log record emitted while the request runs, and each request ends with one
access-log line. With LOG_FORMAT=json each record is one JSON object a line (orjson), which
is what log shippers read; "text" is for people at a terminal.

The web process gets its root handler from the factory (init_app); the Celery worker and beat
get theirs from a `setup_logging` signal receiver (setup_worker_logging), so they log the same
way, to --logfile when one is given."""
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

import orjson
from celery import current_task
from flask import Flask, g, has_request_context, request

ACCESS_LOGGER = "alliance.access"
REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id is echoed into headers and logs: keep it short and to a charset that cannot
# break a header, a log line or a terminal. Anything else is replaced, not cleaned.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_ENVIRON_ID = "alliance.request_id"
_ENVIRON_START = "alliance.request_start"
TEXT_FORMAT = "%(asctime)s %(levelname)s [%(name)s] [%(request_id)s] %(message)s"
# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime",
                                                              "request_id", "taskName"}

log = logging.getLogger(ACCESS_LOGGER)


def request_id() -> str | None:
    """The current request's id (made on first use), or None outside a request."""
    if not has_request_context():
        return None
    environ = request.environ
    rid = environ.get(_ENVIRON_ID)
    if rid is None:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if _SAFE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        environ[_ENVIRON_ID] = rid
    return rid


class RequestContextFilter(logging.Filter):
    """Adds request_id to every record (and the Celery task id inside a task). A filter on
    the handler, so that it sees the records of every logger that propagates to root."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id() or "-"
        if not hasattr(record, "task_id"):
            task = _current_task()
            if task is not None:
                record.task_id = task.request.id
                record.task_name = task.name
        return True


def _current_task():
    task = current_task._get_current_object()
    return task if task is not None and getattr(task.request, "id", None) else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, request_id, the record's `extra`
    fields, and the traceback as a string when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "-")
        if rid and rid != "-":
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (as logging.lastResort does), so a
    replaced stderr (a test's capture, a daemon's redirect) never leaves it on a closed file."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def make_formatter(log_format: str, text_format: str = TEXT_FORMAT) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return logging.Formatter(text_format)
    raise RuntimeError(f"LOG_FORMAT must be 'json' or 'text', not {log_format!r}")


def install_root_handler(handler: logging.Handler, log_format: str, level,
                         text_format: str = TEXT_FORMAT) -> None:
    """Make `handler` the root logger's handler of ours, replacing the one a previous call
    installed (several apps in one process, a worker taking over from the factory)."""
    handler.setFormatter(make_formatter(log_format, text_format))
    handler.addFilter(RequestContextFilter())
    handler._alliance_handler = True  # type: ignore[attr-defined]  # our mark, read back below
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_alliance_handler", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # A logging.config call made since (Alembic's env.py runs fileConfig) disables the loggers
    # that existed then; the access log must not go quiet because migrations ran in-process.
    log.disabled = False


def init_app(app: Flask) -> None:
    """Root handler per LOG_FORMAT / LOG_LEVEL, the request id and the access log."""
    level = str(app.config["LOG_LEVEL"]).upper()
    if not isinstance(logging.getLevelName(level), int):
        raise RuntimeError(f"LOG_LEVEL must be a logging level name, not {level!r}")
    install_root_handler(StderrHandler(), app.config["LOG_FORMAT"], level)
    app.before_request(_start_request)
    app.after_request(_finish_request)


def _start_request() -> None:
    request.environ.setdefault(_ENVIRON_START, time.perf_counter())
    request_id()


def _finish_request(response):
    response.headers[REQUEST_ID_HEADER] = request_id()
    started = request.environ.get(_ENVIRON_START)
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    # The user as this request already loaded it: the access log never loads one itself (no
    # query, no session touched by /healthz and static files).
    user = g.get("_login_user")
    user_id = getattr(user, "id", None) if user is not None and user.is_authenticated else None
    log.info("%s %s %s %sms", request.method, request.path, response.status_code, duration_ms,
             extra={"method": request.method, "path": request.path,
                    "status": response.status_code, "duration_ms": duration_ms,
                    "user_id": user_id, "remote_addr": request.remote_addr})
    return response


def setup_worker_logging(log_format: str, loglevel, logfile=None, format=None,
                         **_kwargs) -> None:
    """Celery's `setup_logging` signal: a receiver makes Celery leave logging to it. Log as
    the web process does, to --logfile when given (else stderr), at --loglevel; text mode
    keeps Celery's own line format."""
    handler = logging.FileHandler(logfile) if logfile else StderrHandler()
    install_root_handler(handler, log_format, loglevel, text_format=format or TEXT_FORMAT)
