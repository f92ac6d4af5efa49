"""One rule each for what people type about time: which timezones exist, that an instant carries
its offset, and which days the product deals in.

Each check raises ValueError with words a caller can show, so pydantic fields, query parameters
and page forms all answer 4xx with the same sentence instead of failing deeper down (an
over-long zone name is an OSError inside zoneinfo, a day near year 9999 overflows once a week is
added, a naive time cannot be compared with a stored one).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

# Far enough for the oldest birth dates, consent reviews and schedules; near enough that a week or
# a month added to a day, or a timezone applied to it, never leaves Python's datetime range.
FIRST_YEAR = 1880
LAST_YEAR = 2200
TIMEZONE_EXAMPLE = "Asia/Hong_Kong"


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: str) -> str:
    """`value` if it names an IANA timezone this machine knows; the lookup is against the list,
    never the file system, so no text can reach zoneinfo's path handling."""
    if value not in _known_timezones():
        raise ValueError(f"unknown IANA timezone, e.g. {TIMEZONE_EXAMPLE!r}")
    return value


@lru_cache(maxsize=256)
def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone for a name that passed `check_timezone`; UTC for anything else (a row written
    before the check existed must not break the page that shows it)."""
    try:
        return zoneinfo.ZoneInfo(check_timezone(name))
    except ValueError:
        return zoneinfo.ZoneInfo("UTC")


def check_year(day: dt.date) -> dt.date:
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise ValueError(f"give a date between {FIRST_YEAR} and {LAST_YEAR}")
    return day


def check_instant(value: dt.datetime) -> dt.datetime:
    """An aware datetime within the product's years, as UTC."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("give a timezone, e.g. 2026-11-28T10:00:00+08:00 or ...Z")
    check_year(value.date())
    return value.astimezone(dt.UTC)


def parse_day(text: str) -> dt.date:
    """A day typed as YYYY-MM-DD, within the product's years."""
    try:
        day = dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("give a date like 2026-11-01") from None
    return check_year(day)


# A point in time from outside: refused without an offset (422 naming the field) or outside the
# product's years; stored and compared as UTC.
Instant = Annotated[AwareDatetime, AfterValidator(check_instant)]
Day = Annotated[dt.date, AfterValidator(check_year)]
