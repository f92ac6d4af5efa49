"""RFC 5545 recurrence evaluated in wall time of the site's IANA timezone (python-dateutil).

The rule runs over naive local datetimes (DTSTART = start date at the window's start), and each
occurrence is then placed in the timezone, so a 10:00-11:00 window stays 10:00 local on both
sides of a daylight-saving change (its UTC time moves by the hour instead).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

from welfare.errors import InvalidInput
from welfare.times import zone

ALLOWED_FREQUENCIES = {DAILY, WEEKLY, MONTHLY, YEARLY}
MAX_RULE_LENGTH = 500


def clean_rule(raw: str) -> str:
    rule = raw.strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[6:]
    return rule.upper()


def validate_rule(raw: str) -> str:
    """The rule in canonical form, or InvalidInput('rrule', ...) saying what is wrong."""
    rule = clean_rule(raw)
    if not rule or "\n" in rule or "DTSTART" in rule or len(rule) > MAX_RULE_LENGTH:
        raise InvalidInput("rrule", "give one RRULE without DTSTART, e.g. FREQ=WEEKLY;BYDAY=MO,TH")
    if "UNTIL=" in rule:
        raise InvalidInput("rrule", "use end_date instead of UNTIL")
    if any(part in rule for part in ("BYHOUR", "BYMINUTE", "BYSECOND")):
        raise InvalidInput("rrule", "the time of day comes from window_start, not the rule")
    try:
        parsed = _parse(rule, dt.datetime(2000, 1, 1))
    except (ValueError, TypeError) as exc:
        raise InvalidInput("rrule", f"not an RFC 5545 recurrence rule: {exc}") from exc
    if not isinstance(parsed, rrule) or parsed._freq not in ALLOWED_FREQUENCIES:
        raise InvalidInput("rrule", "the frequency must be DAILY, WEEKLY, MONTHLY or YEARLY")
    return rule


def _parse(rule: str, dtstart: dt.datetime) -> rrule:
    return rrulestr(rule, dtstart=dtstart)  # type: ignore[return-value]


def to_utc(local: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """A naive wall time in `tz` as UTC. A time skipped by a spring-forward change is taken
    with the offset before the change (PEP 495 fold=0), i.e. an hour later in wall time."""
    return local.replace(tzinfo=tz).astimezone(dt.UTC)


def occurrences(
    *,
    rule: str,
    timezone: str,
    start_date: dt.date,
    end_date: dt.date | None,
    window_start: dt.time,
    window_end: dt.time,
    after: dt.datetime,
    before: dt.datetime,
) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end) in UTC of every window starting in [after, before) (aware datetimes)."""
    tz = zone(timezone)
    dtstart = dt.datetime.combine(start_date, window_start)
    local_after = after.astimezone(tz).replace(tzinfo=None) - dt.timedelta(hours=3)
    local_before = before.astimezone(tz).replace(tzinfo=None) + dt.timedelta(hours=3)
    if end_date is not None:
        last = dt.datetime.combine(end_date, window_start)
        local_before = min(local_before, last + dt.timedelta(seconds=1))
    if local_before <= local_after:
        return []
    length = dt.datetime.combine(start_date, window_end) - dtstart
    out = []
    for local in _parse(rule, dtstart).between(local_after, local_before, inc=True):
        start = to_utc(local, tz)
        if after <= start < before:
            out.append((start, to_utc(local + length, tz)))
    return out
