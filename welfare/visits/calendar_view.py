"""What a manager's week or month calendar shows: the visits in the range and, past the
scheduler's rolling window, the occurrences each schedule will bring.

The scheduler keeps visit rows only a short way ahead (`scheduler.HORIZON`: what reminders,
overdue checks and check-in calls need), so a calendar that looks further ahead expands each
active schedule's rule from where its rows end (`generated_until`) instead of reading rows. A
planned occurrence has no id and nothing to record; it becomes a visit when the window reaches it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, literal, true
from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission, visible_site_ids
from welfare.consent.models import Consent, ConsentScope
from welfare.db import json_array_elements
from welfare.errors import InvalidInput
from welfare.sites.models import Site
from welfare.visits.models import Visit, VisitKind, VisitSchedule, VisitStatus
from welfare.visits.recurrence import occurrences
from welfare.visits.service import visit_filters


@dataclass(frozen=True)
class PlannedVisit:
    """An occurrence past the schedule's generated visits: shown, not yet recordable."""

    schedule_id: uuid.UUID
    site_id: uuid.UUID
    resident_id: uuid.UUID
    kind: VisitKind
    assignee_user_id: uuid.UUID | None
    window_start: dt.datetime
    window_end: dt.datetime
    id: None = None
    status: None = None
    outcome: None = None
    incident_id: None = None


@dataclass
class CalendarEntries:
    """The first `limit` entries of the range in time order; `more` when the range has more."""

    entries: list[Visit | PlannedVisit]
    more: bool


def calendar_entries(
    *,
    session: Session,
    actor: Actor,
    limit: int,
    start_from: dt.datetime,
    start_to: dt.datetime,
    now: dt.datetime,
    site_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
    unassigned: bool = False,
    statuses: list[VisitStatus] | None = None,
) -> CalendarEntries:
    if start_to <= start_from:
        raise InvalidInput("start_to", "the range ends before it starts")
    filters: dict[str, Any] = {
        "site_id": site_id,
        "assignee_user_id": assignee_user_id,
        "unassigned": unassigned,
    }
    visits = list(
        session.exec(
            select(Visit)
            .where(
                *visit_filters(
                    actor, statuses=statuses, start_from=start_from, start_to=start_to, **filters
                )
            )
            .order_by(col(Visit.window_start), col(Visit.id))
            .limit(limit + 1)
        ).all()
    )
    # A planned occurrence is a visit still to be scheduled: none under another status filter.
    if statuses and VisitStatus.scheduled not in statuses:
        return CalendarEntries(entries=list(visits[:limit]), more=len(visits) > limit)
    # Past the last row a full page holds, no planned occurrence could make the page.
    until = (
        visits[limit - 1].window_start + dt.timedelta(microseconds=1)
        if visits[limit:]
        else start_to
    )
    schedules = _schedules_to_expand(session, actor, until, filters)
    seen = {(v.schedule_id, v.window_start) for v in visits}
    # Expanded over a growing span until the page is full: a month past the window of a large
    # site is full within its first day, and the rest need not be expanded at all.
    low, span = max(start_from, now), FIRST_SPAN
    merged: list[Visit | PlannedVisit] = [*visits]
    while low < until:
        high = min(until, low + span)
        merged += [
            p for p in _expand(schedules, low, high) if (p.schedule_id, p.window_start) not in seen
        ]
        if sum(entry.window_start < high for entry in merged) > limit:
            break
        low, span = high, span * 2
    merged.sort(key=lambda entry: entry.window_start)
    return CalendarEntries(entries=merged[:limit], more=len(merged) > limit)


FIRST_SPAN = dt.timedelta(days=1)


@dataclass(frozen=True)
class _Schedule:
    """What expanding a schedule needs, read as plain columns (a large site has thousands)."""

    id: uuid.UUID
    site_id: uuid.UUID
    resident_id: uuid.UUID
    kind: VisitKind
    assignee_user_id: uuid.UUID | None
    rrule: str
    start_date: dt.date
    end_date: dt.date | None
    window_start: dt.time
    window_end: dt.time
    generated_until: dt.datetime | None
    timezone: str


def _schedules_to_expand(
    session: Session, actor: Actor, before: dt.datetime, filters: dict[str, Any]
) -> list[_Schedule]:
    """The active schedules whose generated visits end before `before`, for residents whose
    welfare-visits consent still holds."""
    conditions: list[Any] = [
        col(VisitSchedule.active),
        (col(VisitSchedule.generated_until).is_(None))
        | (col(VisitSchedule.generated_until) < before),
    ]
    sites = visible_site_ids(actor, Permission.registry_read)
    if sites is not None:
        conditions.append(col(VisitSchedule.site_id).in_(sites))
    if filters["site_id"]:
        conditions.append(col(VisitSchedule.site_id) == filters["site_id"])
    if filters["assignee_user_id"]:
        conditions.append(col(VisitSchedule.assignee_user_id) == filters["assignee_user_id"])
    if filters["unassigned"]:
        conditions.append(col(VisitSchedule.assignee_user_id).is_(None))
    # Withdrawing consent stops a schedule only at the scheduler's next generation; the
    # calendar shows nothing planned for a resident whose consent went before then.
    scopes = json_array_elements(session, col(Consent.scopes))
    conditions.append(
        exists(
            select(literal(1))
            .select_from(Consent)
            .join(scopes, true())  # the function of the consent's own column: a lateral join
            .where(
                col(Consent.resident_id) == col(VisitSchedule.resident_id),
                col(Consent.withdrawn_at).is_(None),
                scopes.c.value == ConsentScope.welfare_visits.value,
            )
        )
    )
    columns = [getattr(VisitSchedule, name) for name in list(_Schedule.__dataclass_fields__)[:-1]]
    rows = session.exec(
        select(*columns, Site.timezone)  # type: ignore[call-overload]
        .join(Site, col(Site.id) == col(VisitSchedule.site_id))
        .where(*conditions)
    ).all()
    return [_Schedule(*row) for row in rows]


def _expand(schedules: list[_Schedule], low: dt.datetime, high: dt.datetime) -> list[PlannedVisit]:
    """Each schedule's occurrences in [low, high), from where its generated visits end."""
    return [
        PlannedVisit(
            schedule_id=s.id,
            site_id=s.site_id,
            resident_id=s.resident_id,
            kind=s.kind,
            assignee_user_id=s.assignee_user_id,
            window_start=start,
            window_end=end,
        )
        for s in schedules
        for start, end in occurrences(
            rule=s.rrule,
            timezone=s.timezone,
            start_date=s.start_date,
            end_date=s.end_date,
            window_start=s.window_start,
            window_end=s.window_end,
            after=max(low, s.generated_until or low),
            before=high,
        )
    ]
