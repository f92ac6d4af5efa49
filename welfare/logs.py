"""JSON log lines carrying the request id, for `welfare serve` and `welfare worker`.

The request id lives in a context variable: the HTTP middleware sets it for the duration of a
request (api/middleware.py), and every record logged meanwhile, by any logger, carries it.
Records are formatted from the message and fixed fields only; callers keep personal data out of
the message (names, phone numbers and notes never reach a log call).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import logging.config
import re
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "welfare_request_id", default=None
)

# What we accept from a client's X-Request-ID: short, printable, no spaces or separators that a
# log parser could trip on. Anything else is replaced by a fresh id.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


def sane_request_id(value: str | None) -> str | None:
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return None


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or None) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A `logging.config.dictConfig` (also uvicorn's `log_config`): JSON to stderr for our
    loggers and uvicorn's, the request id on every record."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "json",
        "filters": ["request_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"json": handler},
        "root": {"handlers": ["json"], "level": level},
        "loggers": {
            # uvicorn's own handlers would print plain text; send them through ours instead.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
            # /readyz asks Alembic for the revision: its INFO lines would flood the log.
            "alembic": {"level": "WARNING"},
        },
    }


def configure_json_logging(level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(level))
