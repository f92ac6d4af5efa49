"""The period a report covers: checked once for every report and export."""

from __future__ import annotations

import datetime as dt

from welfare.errors import InvalidInput

MAX_DAYS = 800


def report_range(
    start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime, default_days: int
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end): `default_days` up to now when not given; aware times, in order, at most
    MAX_DAYS long."""
    end = end or now
    start = start or end - dt.timedelta(days=default_days)
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("start", "give times with a timezone, e.g. 2026-11-01T00:00:00Z")
    if end <= start:
        raise InvalidInput("end", "the range ends before it starts")
    if end - start > dt.timedelta(days=MAX_DAYS):
        raise InvalidInput("start", f"ask for at most {MAX_DAYS} days at a time")
    return start, end


def completion_rate(done: int, due: int) -> float | None:
    """done / due to four places; None when nothing was due."""
    return round(done / due, 4) if due else None
