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

from sqlmodel import Session, col, select

from welfare.authz import Actor, Permission, visible_site_ids
from welfare.consent.models import Consent, ConsentScope
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
    planned = _planned(session, actor, max(start_from, now), until, filters)
    seen = {(v.schedule_id, v.window_start) for v in visits}
    merged: list[Visit | PlannedVisit] = [*visits]
    merged += [p for p in planned if (p.schedule_id, p.window_start) not in seen]
    merged.sort(key=lambda entry: entry.window_start)
    return CalendarEntries(entries=merged[:limit], more=len(merged) > limit)


def _planned(
    session: Session,
    actor: Actor,
    start_from: dt.datetime,
    start_to: dt.datetime,
    filters: dict[str, Any],
) -> list[PlannedVisit]:
    """The occurrences in [start_from, start_to) of the active schedules whose generated
    visits end before `start_to`, for residents whose welfare-visits consent still holds."""
    if start_to <= start_from:
        return []
    conditions: list[Any] = [
        col(VisitSchedule.active),
        (col(VisitSchedule.generated_until).is_(None))
        | (col(VisitSchedule.generated_until) < start_to),
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
    schedules = list(session.exec(select(VisitSchedule).where(*conditions)).all())
    if not schedules:
        return []
    # Withdrawing consent stops a schedule only at the scheduler's next generation; the
    # calendar shows nothing planned for a resident whose consent went before then.
    live = session.exec(
        select(Consent.resident_id, Consent.scopes)
        .join(VisitSchedule, col(VisitSchedule.resident_id) == col(Consent.resident_id))
        .where(*conditions, col(Consent.withdrawn_at).is_(None))
    ).all()
    consenting = {rid for rid, scopes in live if ConsentScope.welfare_visits.value in scopes}
    timezones = dict(
        session.exec(
            select(Site.id, Site.timezone).where(col(Site.id).in_({s.site_id for s in schedules}))
        ).all()
    )
    planned = []
    for schedule in schedules:
        if schedule.resident_id not in consenting:
            continue
        for start, end in occurrences(
            rule=schedule.rrule,
            timezone=timezones[schedule.site_id],
            start_date=schedule.start_date,
            end_date=schedule.end_date,
            window_start=schedule.window_start,
            window_end=schedule.window_end,
            after=max(start_from, schedule.generated_until or start_from),
            before=start_to,
        ):
            planned.append(
                PlannedVisit(
                    schedule_id=schedule.id,
                    site_id=schedule.site_id,
                    resident_id=schedule.resident_id,
                    kind=schedule.kind,
                    assignee_user_id=schedule.assignee_user_id,
                    window_start=start,
                    window_end=end,
                )
            )
    return planned
