"""Logging set-up for the entry points, and the request id that every log line about a request carries.

The request id lives in a context variable: gRPC runs each RPC in its own ``contextvars`` context, so
setting it in the servicer tags every line logged on that RPC's thread. A logging filter copies it
onto each record, where both formats print it.

The JSON formatter is written here rather than taken from python-json-logger: it is one
``json.dumps`` of a handful of record fields, and ColdOpen keeps its dependencies to what it needs.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from contextlib import contextmanager
from datetime import datetime, timezone

from coldopen.domain.timing import utc_text

_REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("coldopen_request_id", default="")
MAX_REQUEST_ID_CHARS = 128


def clean_request_id(given: str | None) -> str:
    """The caller's x-request-id if it is printable and short, else a new random id."""
    if given and len(given) <= MAX_REQUEST_ID_CHARS and given.isprintable() and not any(c.isspace() for c in given):
        return given
    return uuid.uuid4().hex


@contextmanager
def request_context(rid: str):
    token = _REQUEST_ID.set(rid)
    try:
        yield rid
    finally:
        _REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "t": utc_text(datetime.fromtimestamp(record.created, timezone.utc)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            entry["request_id"] = rid
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        if rid:
            head, sep, rest = line.partition(": ")
            line = f"{head} [{rid}]{sep}{rest}"
        return line


def configure(level: str, as_json: bool, stream=None) -> None:
    """Install the one handler (stderr by default). Only entry points call this."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # library warnings become log records (JSON lines too)
