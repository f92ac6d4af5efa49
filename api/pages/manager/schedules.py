"""Manager pages: visit schedules, with a builder for their recurrence rule."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.deps import PageUser, check_form_csrf, t
from api.pages.form_errors import FormError, PageRoute
from api.pages.forms import form_model
from api.pages.i18n import N_
from api.pages.manager import views
from api.pages.manager.frame import (
    PAGE_SIZE,
    CsrfField,
    StaffUserDep,
    choose_site,
    parse_uuid,
    visit_words,
)
from api.pages.manager.schedule_form import (
    FormFieldsDep,
    schedule_error,
    schedule_values,
)
from api.pages.rendering import render, see_other
from welfare.authz import Permission, require
from welfare.db import utcnow
from welfare.errors import InvalidInput
from welfare.sites.models import Site
from welfare.visits import manager_view, scheduler
from welfare.visits import service as visits
from welfare.visits.models import (
    ScheduleCreate,
    ScheduleUpdate,
    VisitKind,
    VisitSchedule,
)

router = APIRouter(route_class=PageRoute, prefix="/manage", include_in_schema=False)

COMING_VISITS = 10  # on a schedule's page
PRESET_WORDS = {
    "weekly": N_("Weekly on chosen days"),
    "every_n_days": N_("Every N days"),
    "monthly": N_("Monthly on a day"),
    "raw": N_("RRULE (experts)"),
}

# --- schedules ----------------------------------------------------------------------------------


@router.get("/schedules")
def schedules_page(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    site_id: str | None = None,
    show: str = "active",
    page: int = 1,
) -> Response:
    sites = manager_view.visible_sites(session, page_user.actor)
    site = choose_site(sites, site_id)
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
            **visit_words(),
            "sites": sites,
            "site": site,
            "show": "all" if show == "all" else "active",
            "rows": rows,
            "total": total,
            "page": page,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "residents": manager_view.resident_names(session, {r.resident_id for r in rows}),
            "users": manager_view.user_names(session, {r.assignee_user_id for r in rows}),
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
    coming = (
        manager_view.coming_visits(session, schedule.id, utcnow(), COMING_VISITS)
        if schedule
        else []
    )
    return render(
        request,
        "manager/schedule_form.html",
        {
            **visit_words(),
            "form": form,
            "schedule": schedule,
            "coming": coming,
            "timezone": site.timezone if site else "UTC",
            "site": site,
            "sites": sites,
            "residents": manager_view.schedule_residents(session, site.id) if site else [],
            "resident_name": (
                manager_view.resident_names(session, {schedule.resident_id}).get(
                    schedule.resident_id
                )
                if schedule
                else None
            ),
            "assignees": (manager_view.site_assignees(session, site.id) if site else []),
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
    sites = manager_view.visible_sites(session, page_user.actor)
    site = choose_site(sites, site_id)
    return _schedule_form_page(
        request,
        session,
        page_user,
        form=_empty_schedule_form(resident_id or ""),
        schedule=None,
        site=site,
        sites=sites,
    )


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
    sites = manager_view.visible_sites(session, page_user.actor)
    site = choose_site(sites, site_id)
    form = {**fields, "resident_id": resident_id}
    try:
        values = schedule_values(page_user, form)
        resident = parse_uuid(resident_id)
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
        raise FormError(redraw, error=schedule_error(page_user, exc)) from exc
    return see_other(f"/manage/schedules/{schedule.id}?saved=1")


@router.get("/schedules/{schedule_id}")
def schedule_page(
    request: Request, schedule_id: uuid.UUID, session: SessionDep, page_user: StaffUserDep
) -> Response:
    schedule = visits.get_schedule(session=session, actor=page_user.actor, schedule_id=schedule_id)
    require(page_user.actor, Permission.visits_schedule)
    site = manager_view.site_of(session, schedule.site_id)
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
        values = schedule_values(page_user, form)
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
            site=manager_view.site_of(session, schedule.site_id),
            sites=[],
        )
        raise FormError(redraw, error=schedule_error(page_user, exc)) from exc
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
