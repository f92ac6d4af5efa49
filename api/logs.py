"""Keep personal data out of the access log: query strings (`?q=Wang`, a searched name) go,
and so do the secret tokens of calendar feed URLs (`/calendar/<token>.ics`)."""

from __future__ import annotations

import logging
import re

_CALENDAR_TOKEN = re.compile(r"^/calendar/[^/]+\.ics$")


class DropQueryStrings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn.access: args = (client, method, path with query, http version, status)
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path = args[2].split("?", 1)[0]
            path = _CALENDAR_TOKEN.sub("/calendar/***.ics", path)
            record.args = (*args[:2], path, *args[3:])
        return True


def install_access_log_filter() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, DropQueryStrings) for f in access.filters):
        access.addFilter(DropQueryStrings())
