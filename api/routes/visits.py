"""Welfare visits: schedules (managers), visits and outcomes (staff), calendar feeds."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from api.deps import ActorDep, PageDep, SessionDep, SettingsDep, TransactionRoute
from api.schemas import ListResponse
from welfare.db import utcnow
from welfare.errors import NotFound
from welfare.times import Instant
from welfare.visits import calendar, calendar_view, scheduler
from welfare.visits import service as visits
from welfare.visits.models import (
    CalendarEntryPublic,
    ScheduleCreate,
    SchedulePublic,
    ScheduleUpdate,
    VisitPublic,
    VisitRecord,
    VisitStatus,
)

router = APIRouter(route_class=TransactionRoute, tags=["visits"])


class CalendarTokenIssued(BaseModel):
    token: str
    url: str


# --- schedules ----------------------------------------------------------------------------------


@router.post(
    "/api/v1/visit-schedules", response_model=SchedulePublic, status_code=status.HTTP_201_CREATED
)
def create_schedule(data: ScheduleCreate, session: SessionDep, actor: ActorDep) -> SchedulePublic:
    """A recurring visit for a resident with welfare-visits consent. `rrule` is an RFC 5545
    rule ("FREQ=WEEKLY;BYDAY=MO,TH"); the window is wall time in the site's timezone. The
    coming two weeks of visits exist when this answers (GET /api/v1/visits?resident_id=)."""
    schedule = visits.create_schedule(session=session, actor=actor, data=data)
    scheduler.generate_schedule(session, schedule, utcnow())
    return visits.public_schedule(session, schedule)


@router.get("/api/v1/visit-schedules", response_model=ListResponse[SchedulePublic])
def list_schedules(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    site_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
    active: bool | None = None,
) -> ListResponse[SchedulePublic]:
    rows, total = visits.list_schedules(
        session=session,
        actor=actor,
        limit=page.limit,
        offset=page.offset,
        site_id=site_id,
        resident_id=resident_id,
        assignee_user_id=assignee_user_id,
        active=active,
    )
    return ListResponse(
        items=[visits.public_schedule(session, r) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


@router.get("/api/v1/visit-schedules/{schedule_id}", response_model=SchedulePublic)
def read_schedule(schedule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> SchedulePublic:
    schedule = visits.get_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return visits.public_schedule(session, schedule)


@router.patch("/api/v1/visit-schedules/{schedule_id}", response_model=SchedulePublic)
def update_schedule(
    schedule_id: uuid.UUID, data: ScheduleUpdate, session: SessionDep, actor: ActorDep
) -> SchedulePublic:
    """Changing the rule, window, dates, kind or assignee regenerates the visits not yet due,
    at once."""
    now = utcnow()
    schedule = visits.update_schedule(
        session=session, actor=actor, schedule_id=schedule_id, data=data, now=now
    )
    scheduler.generate_schedule(session, schedule, now)
    return visits.public_schedule(session, schedule)


@router.delete("/api/v1/visit-schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
def end_schedule(schedule_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    """Ends the schedule: future visits go, recorded ones stay."""
    visits.end_schedule(session=session, actor=actor, schedule_id=schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- visits -------------------------------------------------------------------------------------


@router.get("/api/v1/visits", response_model=ListResponse[VisitPublic])
def list_visits(
    session: SessionDep,
    actor: ActorDep,
    page: PageDep,
    site_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
    resident_id: uuid.UUID | None = None,
    status_: Annotated[list[VisitStatus] | None, Query(alias="status")] = None,
    start_from: Instant | None = None,
    start_to: Instant | None = None,
) -> ListResponse[VisitPublic]:
    """Filter by site, assignee, resident, status (repeatable) and window start range."""
    rows, total = visits.list_visits(
        session=session,
        actor=actor,
        limit=page.limit,
        offset=page.offset,
        site_id=site_id,
        assignee_user_id=assignee_user_id,
        resident_id=resident_id,
        statuses=status_,
        start_from=start_from,
        start_to=start_to,
    )
    return ListResponse(
        items=[VisitPublic.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        limit=page.limit,
        offset=page.offset,
    )


class CalendarResponse(BaseModel):
    items: list[CalendarEntryPublic]
    more: bool  # the range holds more than `limit` entries: these are its first


@router.get("/api/v1/visits/calendar", response_model=CalendarResponse)
def visit_calendar(
    session: SessionDep,
    actor: ActorDep,
    start_from: Instant,
    start_to: Instant,
    site_id: uuid.UUID | None = None,
    assignee_user_id: uuid.UUID | None = None,
    unassigned: bool = False,
    status_: Annotated[list[VisitStatus] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=calendar_view.CALENDAR_LIMIT)] = (
        calendar_view.CALENDAR_LIMIT
    ),
) -> CalendarResponse:
    """What the week and month calendars show: the visits whose window starts in the range and,
    past the scheduler's two weeks of visits, the occurrences each schedule will bring
    (`planned`), the first `limit` in time order; `unassigned`: only the site staff's."""
    shown = calendar_view.calendar_entries(
        session=session,
        actor=actor,
        limit=limit,
        start_from=start_from,
        start_to=start_to,
        now=utcnow(),
        site_id=site_id,
        assignee_user_id=assignee_user_id,
        unassigned=unassigned,
        statuses=status_,
    )
    return CalendarResponse(
        items=[
            CalendarEntryPublic(
                planned=e.id is None,
                visit_id=e.id,
                schedule_id=e.schedule_id,
                site_id=e.site_id,
                resident_id=e.resident_id,
                kind=e.kind,
                assignee_user_id=e.assignee_user_id,
                window_start=e.window_start,
                window_end=e.window_end,
                status=e.status,
                outcome=e.outcome,
            )
            for e in shown.entries
        ],
        more=shown.more,
    )


@router.get("/api/v1/visits/{visit_id}", response_model=VisitPublic)
def read_visit(visit_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> VisitPublic:
    visit = visits.get_visit(session=session, actor=actor, visit_id=visit_id)
    return VisitPublic.model_validate(visit, from_attributes=True)


@router.post("/api/v1/visits/{visit_id}/record", response_model=VisitPublic)
def record_visit(
    visit_id: uuid.UUID, data: VisitRecord, session: SessionDep, actor: ActorDep
) -> VisitPublic:
    """Outcome, notes, follow-up. A concern or a follow-up opens a welfare_concern incident for
    staff; "not_home" twice in a row alerts the site's managers. Before the window opens the
    answer is 409 (`confirm_field: "confirm_early"`) unless `confirm_early` is true; more than
    12 hours before it, 422."""
    visit = visits.record_visit(session=session, actor=actor, visit_id=visit_id, data=data)
    return VisitPublic.model_validate(visit, from_attributes=True)


# --- calendar feeds -----------------------------------------------------------------------------


@router.post(
    "/api/v1/users/{user_id}/calendar-token",
    response_model=CalendarTokenIssued,
    status_code=status.HTTP_201_CREATED,
)
def issue_calendar_token(
    user_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> CalendarTokenIssued:
    """Issue (or re-issue, revoking the old) the secret feed URL; shown only this once."""
    token = visits.issue_calendar_token(session=session, actor=actor, user_id=user_id)
    url = f"{settings.public_base_url.rstrip('/')}/calendar/{token}.ics"
    return CalendarTokenIssued(token=token, url=url)


@router.delete("/api/v1/users/{user_id}/calendar-token", status_code=status.HTTP_204_NO_CONTENT)
def revoke_calendar_token(user_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> Response:
    visits.revoke_calendar_token(session=session, actor=actor, user_id=user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/calendar/{token}.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}, 404: {"description": "unknown token"}},
)
def calendar_feed(token: str, session: SessionDep, settings: SettingsDep) -> Response:
    """Public with the secret token: the assignee's visits, a week back to 60 days ahead (past
    the scheduler's window, the occurrences their schedules will bring)."""
    if len(token) > 100:
        raise NotFound("calendar")
    now = utcnow()
    found = calendar_view.feed_entries(session, token, now)
    if found is None:
        raise NotFound("calendar")
    user, rows = found
    body = calendar.ical_feed(user, rows, settings.public_base_url, now)
    return Response(
        content=body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "Referrer-Policy": "no-referrer"},
    )
