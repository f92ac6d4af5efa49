"""Manager pages (/manage): visit calendar and list, recording an outcome, schedules with an
RRULE builder, reports drawn as SVG, and the user's own iCalendar feed.

Thin routes: the visits services decide who may see and change what; these routes parse forms,
call them, and re-render with a translated message (and a 4xx) when the input is refused.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlmodel import Session, col, select

from api.deps import SessionDep, SettingsDep
from api.pages import manager_views as views
from api.pages.deps import CSRF_FIELD, PageUser, PageUserDep, check_form_csrf, t
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import FormValueRefused, form_model
from api.pages.i18n import N_
from api.pages.rendering import render, see_other
from welfare.authz import Permission, Role, require, visible_site_ids
from welfare.db import utcnow
from welfare.errors import ConfirmationRequired, Conflict, InvalidInput, NotFound
from welfare.pagination import paginate
from welfare.residents.models import Resident
from welfare.sites.models import Site
from welfare.times import parse_day, zone
from welfare.users.models import User, UserSite
from welfare.visits import reports, scheduler
from welfare.visits import service as visits
from welfare.visits.models import (
    CalendarToken,
    ScheduleCreate,
    ScheduleUpdate,
    Visit,
    VisitKind,
    VisitOutcome,
    VisitRecord,
    VisitSchedule,
    VisitStatus,
)

router = APIRouter(route_class=PageRoute, prefix="/manage", include_in_schema=False)

CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)]
ShortText = Annotated[str, Form(max_length=100)]
PAGE_SIZE = 50
CALENDAR_LIMIT = 1000
COMING_VISITS = 10  # on a schedule's page

STATUS_WORDS = {
    VisitStatus.scheduled: N_("Scheduled"),
    VisitStatus.reminded: N_("Reminded"),
    VisitStatus.overdue: N_("Overdue"),
    VisitStatus.missed: N_("Missed"),
    VisitStatus.completed: N_("Completed"),
}
OUTCOME_WORDS = {
    VisitOutcome.well: N_("Well"),
    VisitOutcome.concern: N_("Concern"),
    VisitOutcome.not_home: N_("Not home"),
    VisitOutcome.refused: N_("Refused"),
    VisitOutcome.hospitalised: N_("Hospitalised"),
}
KIND_WORDS = {
    VisitKind.home_visit: N_("Home visit"),
    VisitKind.phone_checkin: N_("Phone check-in"),
    VisitKind.automated_call: N_("Automated check-in call"),
}
PRESET_WORDS = {
    "weekly": N_("Weekly on chosen days"),
    "every_n_days": N_("Every N days"),
    "monthly": N_("Monthly on a day"),
    "raw": N_("RRULE (experts)"),
}
# The services' InvalidInput names a field; the page says it in the user's language.
FIELD_ERRORS = {
    "rrule": N_("This recurrence rule is not valid. Example: FREQ=WEEKLY;BYDAY=MO,TH"),
    "window_start": N_("Give the window's start and end as times, e.g. 10:00."),
    "window_end": N_("The window must end after it starts, on the same day."),
    "start_date": N_("Give a start date."),
    "end_date": N_("The end date is before the start date."),
    "assignee_user_id": N_("Choose an active staff member or manager of this site."),
    "kind": N_("Automated check-in calls need the resident's own phone."),
    "resident_id": N_("Choose a resident of your site who consented to welfare visits."),
    "active": N_("This resident has not consented to welfare visits."),
    "visit_id": N_("This visit has not started yet."),
    "start_to": N_("The date range ends before it starts."),
    "date": N_("Give a date between 1880 and 2200, like 2026-11-01."),
}


def staff_page_user(page_user: PageUserDep) -> PageUser:
    """Staff, managers and admins; guards are refused (403)."""
    require(page_user.actor, Permission.registry_read)
    return page_user


StaffUserDep = Annotated[PageUser, Depends(staff_page_user)]


def _field_error(page_user: PageUser, exc: InvalidInput) -> str:
    name = str(exc.loc[-1]) if exc.loc else ""
    if name in FIELD_ERRORS:
        return t(page_user, FIELD_ERRORS[name])
    if isinstance(exc, FormValueRefused):
        return exc.words(page_user.language)
    return t(page_user, N_("Some of the values are not valid."))


def _sites(session: Session, page_user: PageUser) -> list[Site]:
    visible = visible_site_ids(page_user.actor, Permission.registry_read)
    query = select(Site).order_by(col(Site.name), col(Site.id))
    if visible is not None:
        query = query.where(col(Site.id).in_(list(visible)))
    return list(session.exec(query).all())


def _parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("id", "not an id") from None


def _choose_site(sites: list[Site], requested: str | None) -> Site | None:
    """The site asked for (404 when it is not one of the user's), else the first."""
    wanted = _parse_uuid(requested)
    if wanted is None:
        return sites[0] if sites else None
    for site in sites:
        if site.id == wanted:
            return site
    raise NotFound("site")


def _assignees(session: Session, site: Site | None) -> list[User]:
    if site is None:
        return []
    return list(
        session.exec(
            select(User)
            .join(UserSite, col(UserSite.user_id) == User.id)
            .where(
                UserSite.site_id == site.id,
                col(User.role).in_([Role.staff, Role.manager, Role.admin]),
                col(User.is_active),
            )
            .order_by(col(User.display_name), col(User.id))
        ).all()
    )


def _resident_names(session: Session, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    rows = session.exec(
        select(Resident.id, Resident.preferred_name, Resident.full_name).where(
            col(Resident.id).in_(list(ids))
        )
    ).all()
    return {rid: (preferred or full or "—") for rid, preferred, full in rows}


def _user_names(session: Session, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    rows = session.exec(select(User.id, User.display_name).where(col(User.id).in_(wanted))).all()
    return {user_id: name for user_id, name in rows}


def _words() -> dict[str, Any]:
    return {
        "status_words": STATUS_WORDS,
        "outcome_words": OUTCOME_WORDS,
        "kind_words": KIND_WORDS,
        "weekday_names": views.WEEKDAY_NAMES,
        "weekday_short": views.WEEKDAY_SHORT,
    }


def _parse_date(value: str | None, default: dt.date | None = None) -> dt.date | None:
    if not value:
        return default
    try:
        return parse_day(value)
    except ValueError as exc:
        raise InvalidInput("date", str(exc)) from None


def _find_visits(
    session: Session,
    page_user: PageUser,
    *,
    limit: int,
    offset: int,
    unassigned: bool,
    **filters: Any,
) -> tuple[list[Visit], int]:
    """The service's list; "site staff" (no assignee) is a filter the API does not offer, so
    it is added to the service's own conditions (which carry the site check)."""
    if not unassigned:
        return visits.list_visits(
            session=session, actor=page_user.actor, limit=limit, offset=offset, **filters
        )
    if (
        filters["start_from"]
        and filters["start_to"]
        and filters["start_to"] <= filters["start_from"]
    ):
        raise InvalidInput("start_to", "the range ends before it starts")
    query = select(Visit).where(
        *visits.visit_filters(page_user.actor, **filters), col(Visit.assignee_user_id).is_(None)
    )
    return paginate(
        session,
        query,
        limit=limit,
        offset=offset,
        order_by=[col(Visit.window_start), col(Visit.id)],
    )


@router.get("")
def manage_home(page_user: StaffUserDep) -> Response:
    return see_other("/manage/visits")


# --- visits: calendar and list ------------------------------------------------------------------


@router.get("/visits")
def visits_page(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    view: str = "week",
    date: str | None = None,
    site_id: str | None = None,
    assignee: str | None = None,
    status: str | None = None,
    start: str | None = None,
    end: str | None = None,
    page: int = 1,
) -> Response:
    sites = _sites(session, page_user)
    site = _choose_site(sites, site_id)
    tz = zone(site.timezone if site else "UTC")
    today = utcnow().astimezone(tz).date()
    view = view if view in ("week", "month", "list") else "week"
    filters = {
        "view": view,
        "date": date or "",
        "site_id": str(site.id) if site else "",
        "assignee": assignee or "",
        "status": status or "",
        "start": start or "",
        "end": end or "",
    }
    context: dict[str, Any] = {
        **_words(),
        "sites": sites,
        "site": site,
        "timezone": site.timezone if site else "UTC",
        "assignees": _assignees(session, site),
        "filters": filters,
        "statuses": list(VisitStatus),
        "error": None,
        "days": [],
        "rows": [],
        "total": 0,
    }
    if site is None:
        return render(request, "manager/visits.html", context)
    try:
        anchor = _parse_date(date, today) or today
        assignee_id = _parse_uuid(assignee) if assignee not in (None, "", "site") else None
        wanted_status = [VisitStatus(status)] if status else None
        page = max(1, min(page, 100_000))
        if view == "list":
            first = _parse_date(start)
            last = _parse_date(end)
        elif view == "week":
            first, last = views.week_range(anchor)
        else:
            first, last = views.month_range(anchor)
        start_from = views.local_midnight_utc(first, tz) if first else None
        # The list's "to" date is inclusive; the calendars' ranges end at the next Monday.
        if last and view == "list":
            last = last + dt.timedelta(days=1)
        start_to = views.local_midnight_utc(last, tz) if last else None
        rows, total = _find_visits(
            session,
            page_user,
            limit=PAGE_SIZE if view == "list" else CALENDAR_LIMIT,
            offset=(page - 1) * PAGE_SIZE if view == "list" else 0,
            unassigned=assignee == "site",
            site_id=site.id,
            assignee_user_id=assignee_id,
            statuses=wanted_status,
            start_from=start_from,
            start_to=start_to,
        )
    except (InvalidInput, ValueError) as exc:
        message = (
            _field_error(page_user, exc)
            if isinstance(exc, InvalidInput) and exc.loc and exc.loc[-1] in ("start_to", "date")
            else t(page_user, N_("Some of the filters are not valid."))
        )
        context["error"] = message
        return render(request, "manager/visits.html", context, status_code=422)
    context["residents"] = _resident_names(session, {r.resident_id for r in rows})
    context["users"] = _user_names(session, {r.assignee_user_id for r in rows})
    context["rows"] = rows
    context["total"] = total
    if view == "week":
        first, last = views.week_range(anchor)
        context["days"] = views.group_by_local_day(first, last, rows, tz, today, anchor.month)
        context["range_label"] = (first, last - dt.timedelta(days=1))
        context["previous"] = first - dt.timedelta(days=7)
        context["next"] = last
    elif view == "month":
        first, last = views.month_range(anchor)
        days = views.group_by_local_day(first, last, rows, tz, today, anchor.month)
        context["weeks"] = [days[i : i + 7] for i in range(0, len(days), 7)]
        context["month"] = anchor.replace(day=1)
        context["previous"] = views.shift_month(anchor, -1)
        context["next"] = views.shift_month(anchor, 1)
    else:
        context["page"] = page
        context["pages"] = max(1, -(-total // PAGE_SIZE))
    context["today"] = today

    def link(**changes: Any) -> str:
        values = {**filters, **{k: str(v) for k, v in changes.items()}}
        return "/manage/visits?" + urlencode({k: v for k, v in values.items() if v})

    context["link"] = link
    return render(request, "manager/visits.html", context)


# --- one visit: record the outcome --------------------------------------------------------------


def _visit_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    visit: Visit,
    *,
    form: dict[str, Any] | None = None,
    error: str | None = None,
    confirm_early: bool = False,
    status_code: int = 200,
) -> Response:
    site = session.get(Site, visit.site_id)
    schedule = session.get(VisitSchedule, visit.schedule_id)
    names = _resident_names(session, {visit.resident_id})
    return render(
        request,
        "manager/visit.html",
        {
            **_words(),
            "visit": visit,
            "schedule": schedule,
            "timezone": site.timezone if site else "UTC",
            "resident_name": names.get(visit.resident_id, "—"),
            "assignee_name": _user_names(session, {visit.assignee_user_id}).get(
                visit.assignee_user_id  # type: ignore[arg-type]
            ),
            "recorder_name": _user_names(session, {visit.recorded_by}).get(
                visit.recorded_by  # type: ignore[arg-type]
            ),
            "outcomes": list(VisitOutcome),
            "form": form or {"outcome": "", "notes": "", "follow_up": False},
            "error": error,
            "confirm_early": confirm_early,
            "can_record": page_user.actor.can(Permission.registry_write),
        },
        status_code=status_code,
    )


@router.get("/visits/{visit_id}")
def visit_page(
    request: Request, visit_id: uuid.UUID, session: SessionDep, page_user: StaffUserDep
) -> Response:
    visit = visits.get_visit(session=session, actor=page_user.actor, visit_id=visit_id)
    return _visit_page(request, session, page_user, visit)


@router.post("/visits/{visit_id}/record")
def record_visit(
    request: Request,
    visit_id: uuid.UUID,
    session: SessionDep,
    page_user: StaffUserDep,
    csrf_token: CsrfField = None,
    outcome: Annotated[str, Form(max_length=40)] = "",
    notes: Annotated[str, Form(max_length=4000)] = "",
    follow_up: Annotated[bool, Form()] = False,
    confirm_early: Annotated[bool, Form()] = False,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    visit = visits.get_visit(session=session, actor=page_user.actor, visit_id=visit_id)
    form = {"outcome": outcome, "notes": notes, "follow_up": follow_up}
    # After a rollback `visit` is read again when the page uses it.
    redraw = partial(_visit_page, request, session, page_user, visit, form=form)
    if outcome not in {o.value for o in VisitOutcome}:
        return redraw(error=t(page_user, N_("Choose what you found.")), status_code=422)
    try:
        visits.record_visit(
            session=session,
            actor=page_user.actor,
            visit_id=visit_id,
            data=form_model(
                VisitRecord,
                outcome=VisitOutcome(outcome),
                notes=notes.strip() or None,
                follow_up=follow_up,
                confirm_early=confirm_early,
            ),
        )
    except ConfirmationRequired as exc:
        # Asked, not refused: the same form again, with the question and a button that answers
        # it.
        raise FormError(redraw, confirm_early=True, status_code=409) from exc
    except Conflict as exc:
        error = t(page_user, N_("This visit was already recorded."))
        raise FormError(redraw, error=error, status_code=409) from exc
    except InvalidInput as exc:
        raise FormError(redraw, error=_field_error(page_user, exc)) from exc
    return see_other(f"/manage/visits/{visit_id}?saved=1")


# --- schedules ----------------------------------------------------------------------------------


def _schedule_residents(session: Session, site: Site | None) -> list[Resident]:
    if site is None:
        return []
    return list(
        session.exec(
            select(Resident)
            .where(Resident.site_id == site.id, col(Resident.erased_at).is_(None))
            .order_by(col(Resident.preferred_name), col(Resident.full_name), col(Resident.id))
            .limit(2000)
        ).all()
    )


@router.get("/schedules")
def schedules_page(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    site_id: str | None = None,
    show: str = "active",
    page: int = 1,
) -> Response:
    sites = _sites(session, page_user)
    site = _choose_site(sites, site_id)
    page = max(1, min(page, 100_000))
    rows: list[VisitSchedule] = []
    total = 0
    if site is not None:
        rows, total = visits.list_schedules(
            session=session,
            actor=page_user.actor,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
            site_id=site.id,
            active=None if show == "all" else True,
        )
    return render(
        request,
        "manager/schedules.html",
        {
            **_words(),
            "sites": sites,
            "site": site,
            "show": "all" if show == "all" else "active",
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "residents": _resident_names(session, {r.resident_id for r in rows}),
            "users": _user_names(session, {r.assignee_user_id for r in rows}),
            "rule_text": {r.id: _rule_text(page_user, r.rrule) for r in rows},
            "can_schedule": page_user.actor.can(Permission.visits_schedule),
        },
    )


def _rule_text(page_user: PageUser, rule: str) -> str:
    """The rule in words when a preset says it, else the rule itself."""
    form = views.parse_rule(rule)
    if form.preset == "weekly":
        days = ", ".join(
            t(page_user, views.WEEKDAY_SHORT[views.WEEKDAYS.index(d)]) for d in form.weekdays
        )
        return t(page_user, N_("Weekly: {days}")).format(days=days)
    if form.preset == "every_n_days":
        return t(page_user, N_("Every {n} days")).format(n=form.every_days)
    if form.preset == "monthly":
        return t(page_user, N_("Monthly on day {n}")).format(n=form.month_day)
    return rule


def _empty_schedule_form(resident_id: str = "") -> dict[str, Any]:
    return {
        "resident_id": resident_id,
        "kind": VisitKind.home_visit.value,
        "rule": views.RuleForm(),
        "window_start": "10:00",
        "window_end": "11:00",
        "assignee": "",
        "start_date": utcnow().date().isoformat(),
        "end_date": "",
        "active": True,
    }


def _schedule_form_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    form: dict[str, Any],
    schedule: VisitSchedule | None,
    site: Site | None,
    sites: list[Site],
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    coming: list[Visit] = []
    if schedule is not None:
        coming = list(
            session.exec(
                select(Visit)
                .where(Visit.schedule_id == schedule.id, col(Visit.window_end) > utcnow())
                .order_by(col(Visit.window_start))
                .limit(COMING_VISITS)
            ).all()
        )
    return render(
        request,
        "manager/schedule_form.html",
        {
            **_words(),
            "form": form,
            "schedule": schedule,
            "coming": coming,
            "timezone": site.timezone if site else "UTC",
            "site": site,
            "sites": sites,
            "residents": _schedule_residents(session, site),
            "resident_name": (
                _resident_names(session, {schedule.resident_id}).get(schedule.resident_id)
                if schedule
                else None
            ),
            "assignees": _assignees(session, site),
            "kinds": list(VisitKind),
            "presets": PRESET_WORDS,
            "weekdays": views.WEEKDAYS,
            "error": error,
        },
        status_code=status_code,
    )


@router.get("/schedules/new")
def new_schedule_page(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    site_id: str | None = None,
    resident_id: str | None = None,
) -> Response:
    require(page_user.actor, Permission.visits_schedule)
    sites = _sites(session, page_user)
    site = _choose_site(sites, site_id)
    return _schedule_form_page(
        request,
        session,
        page_user,
        form=_empty_schedule_form(resident_id or ""),
        schedule=None,
        site=site,
        sites=sites,
    )


def _read_schedule_form(
    *,
    kind: str,
    preset: str,
    weekdays: list[str],
    every_days: str,
    month_day: str,
    rrule_raw: str,
    window_start: str,
    window_end: str,
    assignee: str,
    start_date: str,
    end_date: str,
    active: bool,
    resident_id: str = "",
) -> dict[str, Any]:
    return {
        "resident_id": resident_id,
        "kind": kind,
        "rule": views.RuleForm(
            preset=preset,
            weekdays=weekdays,
            every_days=every_days,
            month_day=month_day,
            raw=rrule_raw,
        ),
        "window_start": window_start,
        "window_end": window_end,
        "assignee": assignee,
        "start_date": start_date,
        "end_date": end_date,
        "active": active,
    }


def _schedule_values(page_user: PageUser, form: dict[str, Any]) -> dict[str, Any]:
    """Typed values from the form, or InvalidInput naming the field."""
    try:
        rule = views.build_rule(form["rule"])
    except views.RuleError as exc:
        raise InvalidInput("rule_builder", str(exc)) from None
    values: dict[str, Any] = {"rrule": rule}
    try:
        values["kind"] = VisitKind(form["kind"])
    except ValueError:
        raise InvalidInput("kind_choice", "unknown kind") from None
    for name in ("window_start", "window_end"):
        try:
            values[name] = dt.time.fromisoformat(form[name])
        except ValueError:
            raise InvalidInput("window_start", "not a time") from None
    for name in ("start_date", "end_date"):
        if not form[name] and name == "end_date":
            values[name] = None
            continue
        try:
            values[name] = parse_day(form[name])
        except ValueError:
            raise InvalidInput(name if name == "start_date" else "end_date_format", "") from None
    values["assignee_user_id"] = _parse_uuid(form["assignee"]) if form["assignee"] else None
    values["active"] = form["active"]
    return values


EXTRA_FIELD_ERRORS = {
    "kind_choice": N_("Choose a kind of visit."),
    "end_date_format": N_("Give the end date as a date, or leave it empty."),
    "id": N_("Choose from the list."),
}


def _schedule_error(page_user: PageUser, exc: InvalidInput) -> str:
    name = str(exc.loc[-1]) if exc.loc else ""
    if name == "rule_builder":
        return t(page_user, exc.message)
    if name in EXTRA_FIELD_ERRORS:
        return t(page_user, EXTRA_FIELD_ERRORS[name])
    return _field_error(page_user, exc)


ScheduleFormFields = dict[str, Any]


def schedule_form_fields(
    kind: Annotated[str, Form(max_length=40)] = "",
    preset: Annotated[str, Form(max_length=40)] = "weekly",
    weekdays: Annotated[list[str] | None, Form()] = None,
    every_days: Annotated[str, Form(max_length=10)] = "1",
    month_day: Annotated[str, Form(max_length=10)] = "1",
    rrule_raw: Annotated[str, Form(max_length=500)] = "",
    window_start: Annotated[str, Form(max_length=10)] = "",
    window_end: Annotated[str, Form(max_length=10)] = "",
    assignee: Annotated[str, Form(max_length=60)] = "",
    start_date: Annotated[str, Form(max_length=20)] = "",
    end_date: Annotated[str, Form(max_length=20)] = "",
    active: Annotated[bool, Form()] = False,
) -> ScheduleFormFields:
    return _read_schedule_form(
        kind=kind,
        preset=preset,
        weekdays=weekdays or [],
        every_days=every_days,
        month_day=month_day,
        rrule_raw=rrule_raw,
        window_start=window_start,
        window_end=window_end,
        assignee=assignee,
        start_date=start_date,
        end_date=end_date,
        active=active,
    )


FormFieldsDep = Annotated[ScheduleFormFields, Depends(schedule_form_fields)]


@router.post("/schedules/new")
def create_schedule(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    fields: FormFieldsDep,
    csrf_token: CsrfField = None,
    site_id: Annotated[str, Form(max_length=60)] = "",
    resident_id: Annotated[str, Form(max_length=60)] = "",
) -> Response:
    check_form_csrf(page_user, csrf_token)
    require(page_user.actor, Permission.visits_schedule)
    sites = _sites(session, page_user)
    site = _choose_site(sites, site_id)
    form = {**fields, "resident_id": resident_id}
    try:
        values = _schedule_values(page_user, form)
        resident = _parse_uuid(resident_id)
        if resident is None:
            raise InvalidInput("resident_id", "choose a resident")
        schedule = visits.create_schedule(
            session=session,
            actor=page_user.actor,
            data=form_model(ScheduleCreate, resident_id=resident, **values),
        )
        scheduler.generate_schedule(session, schedule, utcnow())
    except InvalidInput as exc:
        redraw = partial(
            _schedule_form_page,
            request,
            session,
            page_user,
            form=form,
            schedule=None,
            site=site,
            sites=sites,
        )
        raise FormError(redraw, error=_schedule_error(page_user, exc)) from exc
    return see_other(f"/manage/schedules/{schedule.id}?saved=1")


@router.get("/schedules/{schedule_id}")
def schedule_page(
    request: Request, schedule_id: uuid.UUID, session: SessionDep, page_user: StaffUserDep
) -> Response:
    schedule = visits.get_schedule(session=session, actor=page_user.actor, schedule_id=schedule_id)
    require(page_user.actor, Permission.visits_schedule)
    site = session.get(Site, schedule.site_id)
    form = {
        "resident_id": str(schedule.resident_id),
        "kind": schedule.kind.value,
        "rule": views.parse_rule(schedule.rrule),
        "window_start": schedule.window_start.strftime("%H:%M"),
        "window_end": schedule.window_end.strftime("%H:%M"),
        "assignee": str(schedule.assignee_user_id or ""),
        "start_date": schedule.start_date.isoformat(),
        "end_date": schedule.end_date.isoformat() if schedule.end_date else "",
        "active": schedule.active,
    }
    return _schedule_form_page(
        request, session, page_user, form=form, schedule=schedule, site=site, sites=[]
    )


@router.post("/schedules/{schedule_id}")
def update_schedule(
    request: Request,
    schedule_id: uuid.UUID,
    session: SessionDep,
    page_user: StaffUserDep,
    fields: FormFieldsDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    schedule = visits.get_schedule(session=session, actor=page_user.actor, schedule_id=schedule_id)
    form = {**fields, "resident_id": str(schedule.resident_id)}
    try:
        values = _schedule_values(page_user, form)
        now = utcnow()
        schedule = visits.update_schedule(
            session=session,
            actor=page_user.actor,
            schedule_id=schedule_id,
            data=form_model(ScheduleUpdate, **values),
            now=now,
        )
        scheduler.generate_schedule(session, schedule, now)
    except InvalidInput as exc:
        # The schedule's site cannot change (ScheduleUpdate has none); its other values are
        # read again after the rollback.
        redraw = partial(
            _schedule_form_page,
            request,
            session,
            page_user,
            form=form,
            schedule=schedule,
            site=session.get(Site, schedule.site_id),
            sites=[],
        )
        raise FormError(redraw, error=_schedule_error(page_user, exc)) from exc
    return see_other(f"/manage/schedules/{schedule_id}?saved=1")


@router.post("/schedules/{schedule_id}/end")
def end_schedule(
    schedule_id: uuid.UUID,
    session: SessionDep,
    page_user: StaffUserDep,
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    visits.end_schedule(session=session, actor=page_user.actor, schedule_id=schedule_id)
    return see_other(f"/manage/schedules/{schedule_id}?ended=1")


# --- reports ------------------------------------------------------------------------------------

REPORT_PERIODS = {30: N_("Last 30 days"), 90: N_("Last 90 days"), 365: N_("Last 12 months")}


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


@router.get("/reports")
def reports_page(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    site_id: str | None = None,
    days: int = 30,
) -> Response:
    require(page_user.actor, Permission.reports_read)
    sites = _sites(session, page_user)
    site = _choose_site(sites, site_id)
    days = days if days in REPORT_PERIODS else 30
    context: dict[str, Any] = {
        **_words(),
        "sites": sites,
        "site": site,
        "days": days,
        "periods": REPORT_PERIODS,
        "completion": None,
        "times": None,
    }
    if site is None:
        return render(request, "manager/reports.html", context)
    now = utcnow()
    completion = reports.visit_completion(
        session=session,
        actor=page_user.actor,
        now=now,
        site_id=site.id,
        start=now - dt.timedelta(days=days),
        end=now,
    )
    times = reports.response_times(
        session=session,
        actor=page_user.actor,
        now=now,
        site_id=site.id,
        start=now - dt.timedelta(days=365),
        end=now,
        timezone=site.timezone,
    )
    staff_word = t(page_user, N_("Site staff"))
    assignee_rows = [
        (
            row["assignee"] if row["assignee_user_id"] else staff_word,
            row["rate"],
            views.percent(row["rate"]),
        )
        for row in completion["by_assignee"]
    ]
    resident_names = _resident_names(session, {r["resident_id"] for r in completion["by_resident"]})
    for row in completion["by_resident"]:
        row["name"] = resident_names.get(row["resident_id"], "—")
    resident_rows = [
        (row["name"], row["rate"], views.percent(row["rate"])) for row in completion["by_resident"]
    ]
    months = [m["month"] for m in times["months"]]
    metric_names = (
        ("to_first_message", N_("Time to the first message sent")),
        ("to_confirmation", N_("Time to confirmation")),
        ("to_hand_over", N_("Time to hand-over")),
    )
    charts = []
    for key, title in metric_names:
        median = [_minutes(m[key]["median_seconds"]) for m in times["months"]]
        p90 = [_minutes(m[key]["p90_seconds"]) for m in times["months"]]
        charts.append(
            {
                "key": key,
                "title": title,
                "chart": views.line_chart(
                    months,
                    [
                        (t(page_user, N_("Median")), "series-median", median),
                        (t(page_user, N_("90th percentile")), "series-p90", p90),
                    ],
                ),
                "rows": [
                    (
                        m["month"],
                        m["incidents"],
                        m[key]["count"],
                        views.format_minutes(a),
                        views.format_minutes(b),
                    )
                    for m, a, b in zip(times["months"], median, p90, strict=True)
                ],
            }
        )
    period = {"start": completion["start"].isoformat(), "end": completion["end"].isoformat()}
    context.update(
        completion=completion,
        times=times,
        assignee_chart=views.bar_chart(assignee_rows),
        resident_chart=views.bar_chart(resident_rows),
        assignee_rows=list(zip(assignee_rows, completion["by_assignee"], strict=True)),
        resident_rows=list(zip(resident_rows, completion["by_resident"], strict=True)),
        charts=charts,
        percent=views.percent,
        visits_csv="/api/v1/reports/visits.csv?" + urlencode({"site_id": site.id, **period}),
        incidents_csv="/api/v1/reports/incidents.csv?"
        + urlencode(
            {
                "site_id": site.id,
                "start": (now - dt.timedelta(days=365)).isoformat(),
                "end": now.isoformat(),
            }
        ),
    )
    return render(request, "manager/reports.html", context)


# --- the user's own calendar feed ---------------------------------------------------------------


def _feed_page(
    request: Request,
    session: Session,
    page_user: PageUser,
    *,
    url: str | None = None,
    message: str | None = None,
) -> Response:
    user_id = page_user.actor.user_id
    assert user_id is not None
    token = session.get(CalendarToken, user_id)
    return render(
        request,
        "manager/calendar_feed.html",
        {
            "has_feed": token is not None,
            "issued_at": token.created_at if token else None,
            "url": url,
            "message": message,
        },
    )


@router.get("/calendar-feed")
def calendar_feed_page(request: Request, session: SessionDep, page_user: StaffUserDep) -> Response:
    return _feed_page(request, session, page_user)


@router.post("/calendar-feed")
def calendar_feed_change(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    page_user: StaffUserDep,
    action: ShortText = "",
    csrf_token: CsrfField = None,
) -> Response:
    check_form_csrf(page_user, csrf_token)
    user_id = page_user.actor.user_id
    assert user_id is not None
    if action == "issue":
        token = visits.issue_calendar_token(session=session, actor=page_user.actor, user_id=user_id)
        session.flush()
        url = f"{settings.public_base_url.rstrip('/')}/calendar/{token}.ics"
        # Shown once: this answer is not stored (no-store) and the token is kept only hashed.
        return _feed_page(request, session, page_user, url=url)
    if action == "revoke":
        with contextlib.suppress(NotFound):  # nothing to revoke: what the user wanted anyway
            visits.revoke_calendar_token(session=session, actor=page_user.actor, user_id=user_id)
        return see_other("/manage/calendar-feed?revoked=1")
    raise InvalidInput("action", "issue or revoke")
