"""The period a report covers: checked once for every report and export."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlmodel import col

from welfare.authz import Actor, Permission, visible_site_ids
from welfare.errors import InvalidInput
from welfare.incidents.models import Incident

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


def incidents_opened(
    actor: Actor, *, site_id: uuid.UUID | None, start: dt.datetime, end: dt.datetime
) -> list[Any]:
    """WHERE conditions on Incident: opened in [start, end), at the sites whose reports the
    actor may read (and at `site_id` when given), as `visit_filters` is for visits."""
    conditions: list[Any] = [col(Incident.opened_at) >= start, col(Incident.opened_at) < end]
    sites = visible_site_ids(actor, Permission.reports_read)
    if sites is not None:
        conditions.append(col(Incident.site_id).in_(sites))
    if site_id:
        conditions.append(Incident.site_id == site_id)
    return conditions
