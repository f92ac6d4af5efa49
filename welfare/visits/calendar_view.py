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

from welfare.authz import Actor, Permission, Role, visible_site_ids
from welfare.consent.models import Consent, ConsentScope
from welfare.db import json_array_elements
from welfare.errors import InvalidInput
from welfare.sites.models import Site
from welfare.users.models import User, UserSite
from welfare.users.service import hash_token
from welfare.visits.models import CalendarToken, Visit, VisitKind, VisitSchedule, VisitStatus
from welfare.visits.recurrence import occurrences
from welfare.visits.service import visit_filters

CALENDAR_LIMIT = 1000  # entries a calendar shows at most
LONGEST_RANGE = dt.timedelta(days=400)  # a year's view and its edges


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
    if start_to - start_from > LONGEST_RANGE:
        raise InvalidInput("start_to", f"a calendar covers at most {LONGEST_RANGE.days} days")
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
    conditions = _schedule_conditions(actor, **filters)
    return _with_planned(session, visits, conditions, max(start_from, now), start_to, limit)


def feed_entries(
    session: Session, token: str, now: dt.datetime
) -> tuple[User, list[Visit | PlannedVisit]] | None:
    """The calendar feed's owner and their visits and planned occurrences (assigned to them,
    or, for staff, to their sites' staff as a whole) from a week back to FEED_AHEAD ahead;
    None for an unknown or revoked token."""
    row = session.exec(
        select(CalendarToken).where(CalendarToken.token_hash == hash_token(token))
    ).first()
    user = session.get(User, row.user_id) if row else None
    if user is None or not user.is_active:
        return None
    sites = list(session.exec(select(UserSite.site_id).where(UserSite.user_id == user.id)).all())
    visits_of, schedules_of = (
        col(Visit.assignee_user_id) == user.id,
        col(VisitSchedule.assignee_user_id) == user.id,
    )
    if user.role == Role.staff and sites:
        visits_of |= col(Visit.assignee_user_id).is_(None) & col(Visit.site_id).in_(sites)
        schedules_of |= col(VisitSchedule.assignee_user_id).is_(None) & col(
            VisitSchedule.site_id
        ).in_(sites)
    start, end = now - dt.timedelta(days=7), now + FEED_AHEAD
    visits = list(
        session.exec(
            select(Visit)
            .where(visits_of, col(Visit.window_start) >= start, col(Visit.window_start) < end)
            .order_by(col(Visit.window_start), col(Visit.id))
            .limit(FEED_LIMIT + 1)
        ).all()
    )
    return user, _with_planned(session, visits, [schedules_of], now, end, FEED_LIMIT).entries


FEED_AHEAD = dt.timedelta(days=60)
FEED_LIMIT = 2000


def _with_planned(
    session: Session,
    visits: list[Visit],
    conditions: list[Any],
    start_from: dt.datetime,
    start_to: dt.datetime,
    limit: int,
) -> CalendarEntries:
    """`visits` (the first `limit` + 1 rows of the range, in time order) and the planned
    occurrences from `start_from` of the schedules meeting `conditions`: the first `limit`."""
    # Past the last row a full page holds, no planned occurrence could make the page.
    until = (
        visits[limit - 1].window_start + dt.timedelta(microseconds=1)
        if visits[limit:]
        else start_to
    )
    schedules = _schedules_to_expand(session, until, conditions)
    seen = {(v.schedule_id, v.window_start) for v in visits}
    # Expanded over a growing span until the page is full: a month past the window of a large
    # site is full within its first day, and the rest need not be expanded at all.
    low, span = start_from, FIRST_SPAN
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


def _schedule_conditions(
    actor: Actor,
    *,
    site_id: uuid.UUID | None,
    assignee_user_id: uuid.UUID | None,
    unassigned: bool,
) -> list[Any]:
    """The calendar's filters (as `visit_filters` applies them to visits) on schedules."""
    conditions: list[Any] = []
    sites = visible_site_ids(actor, Permission.registry_read)
    if sites is not None:
        conditions.append(col(VisitSchedule.site_id).in_(sites))
    if site_id:
        conditions.append(col(VisitSchedule.site_id) == site_id)
    if assignee_user_id:
        conditions.append(col(VisitSchedule.assignee_user_id) == assignee_user_id)
    if unassigned:
        conditions.append(col(VisitSchedule.assignee_user_id).is_(None))
    return conditions


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
    session: Session, before: dt.datetime, chosen: list[Any]
) -> list[_Schedule]:
    """The active schedules meeting `chosen` whose generated visits end before `before`, for
    residents whose welfare-visits consent still holds."""
    conditions: list[Any] = [
        *chosen,
        col(VisitSchedule.active),
        (col(VisitSchedule.generated_until).is_(None))
        | (col(VisitSchedule.generated_until) < before),
    ]
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
