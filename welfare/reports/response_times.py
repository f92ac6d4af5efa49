"""Incident response times: per month of opening, the median and 90th percentile of the time
from opening to the first message handed to the provider, to a confirmation, to the hand-over."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import defaultdict

from sqlmodel import Session, select

from welfare.authz import Actor
from welfare.errors import InvalidInput
from welfare.incidents.models import Incident
from welfare.reports.models import MonthResponseTimes, ResponseTimes, TimeSummary
from welfare.reports.periods import incidents_opened, report_range
from welfare.times import check_timezone, zone


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _summary(values: list[float]) -> TimeSummary:
    median, p90 = percentile(values, 0.5), percentile(values, 0.9)
    return TimeSummary(
        count=len(values),
        median_seconds=None if median is None else round(median, 1),
        p90_seconds=None if p90 is None else round(p90, 1),
    )


def response_times(
    *,
    session: Session,
    actor: Actor,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    timezone: str = "UTC",
) -> ResponseTimes:
    """Per month of opening (in `timezone`): median and 90th percentile of the time from
    opening to the first message handed to the provider, to a confirmation, to the hand-over."""
    start, end = report_range(start, end, now, 365)
    try:
        tz = zone(check_timezone(timezone))
    except ValueError as exc:
        raise InvalidInput("timezone", str(exc)) from None
    query = select(
        Incident.opened_at, Incident.first_sent_at, Incident.confirmed_at, Incident.handed_over_at
    ).where(*incidents_opened(actor, site_id=site_id, start=start, end=end))
    months: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: {"first_sent": [], "confirmed": [], "handed_over": [], "_n": []}
    )
    for opened, first_sent, confirmed, handed_over in session.exec(query).all():
        bucket = months[opened.astimezone(tz).strftime("%Y-%m")]
        bucket["_n"].append(1)
        for name, at in (
            ("first_sent", first_sent),
            ("confirmed", confirmed),
            ("handed_over", handed_over),
        ):
            if at is not None:
                bucket[name].append(max((at - opened).total_seconds(), 0.0))
    return ResponseTimes(
        start=start,
        end=end,
        site_id=site_id,
        timezone=timezone,
        months=[
            MonthResponseTimes(
                month=month,
                incidents=len(values["_n"]),
                to_first_message=_summary(values["first_sent"]),
                to_confirmation=_summary(values["confirmed"]),
                to_hand_over=_summary(values["handed_over"]),
            )
            for month, values in sorted(months.items())
        ],
    )
