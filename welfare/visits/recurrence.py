"""RFC 5545 recurrence evaluated in wall time of the site's IANA timezone (python-dateutil).

The rule runs over naive local datetimes (DTSTART = start date at the window's start), and each
occurrence is then placed in the timezone, so a 10:00-11:00 window stays 10:00 local on both
sides of a daylight-saving change (its UTC time moves by the hour instead).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache

from dateutil.relativedelta import relativedelta
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
        parsed = _parsed(rule)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("rrule", f"not an RFC 5545 recurrence rule: {exc}") from exc
    if not isinstance(parsed, rrule) or parsed._freq not in ALLOWED_FREQUENCIES:
        raise InvalidInput("rrule", "the frequency must be DAILY, WEEKLY, MONTHLY or YEARLY")
    return rule


def _parse(rule: str, dtstart: dt.datetime) -> rrule:
    return _parsed(rule).replace(dtstart=dtstart)


@lru_cache(maxsize=4096)
def _parsed(rule: str) -> rrule:
    """The rule's text parsed once (half the cost of expanding it); `replace` then gives it a
    schedule's own DTSTART, from which it takes whatever the rule leaves implicit."""
    return rrulestr(rule, dtstart=dt.datetime(2000, 1, 1))  # type: ignore[return-value]


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
    for local in _rule_near(rule, dtstart, local_after).between(
        local_after, local_before, inc=True
    ):
        start = to_utc(local, tz)
        if after <= start < before:
            out.append((start, to_utc(local + length, tz)))
    return out


def _rule_near(rule: str, dtstart: dt.datetime, near: dt.datetime) -> rrule:
    """The rule with its DTSTART moved forward by whole periods to just before `near`, so
    dateutil (which walks every occurrence from DTSTART) does not walk a years-old schedule's
    past each time. Whole multiples of INTERVAL keep the periods aligned, and so every
    occurrence from the new start is the same; a COUNT counts from DTSTART, and a start on a
    day that shifting by months or years would change (the 29th-31st, 29 February) would
    change what the rule means, so those keep theirs."""
    parsed = _parsed(rule)
    if parsed._count is not None or near <= dtstart:
        return _parse(rule, dtstart)
    interval = parsed._interval
    days = (near.date() - dtstart.date()).days
    if parsed._freq == DAILY:
        step = relativedelta(days=interval)
        periods = days // interval
    elif parsed._freq == WEEKLY:
        step = relativedelta(weeks=interval)
        periods = days // 7 // interval
    elif parsed._freq == MONTHLY and dtstart.day <= 28:
        step = relativedelta(months=interval)
        periods = ((near.year - dtstart.year) * 12 + near.month - dtstart.month) // interval
    elif parsed._freq == YEARLY and (dtstart.month, dtstart.day) != (2, 29):
        step = relativedelta(years=interval)
        periods = (near.year - dtstart.year) // interval
    else:
        return _parse(rule, dtstart)
    # One period short of `near`, so no occurrence on or after it is left out.
    if periods < 2:
        return _parse(rule, dtstart)
    return _parse(rule, dtstart + step * (periods - 1))
