"""Manager pages: the visit calendar (week, month) and list, and recording a visit's outcome."""

from __future__ import annotations

import datetime as dt
import uuid
from functools import partial
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

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
    field_error,
    parse_date,
    parse_uuid,
    visit_words,
)
from api.pages.rendering import render, see_other
from welfare.authz import Permission
from welfare.db import utcnow
from welfare.errors import ConfirmationRequired, Conflict, InvalidInput
from welfare.sites.models import Site
from welfare.times import zone
from welfare.visits import calendar_view, manager_view
from welfare.visits import service as visits
from welfare.visits.models import (
    Visit,
    VisitOutcome,
    VisitRecord,
    VisitStatus,
)
from welfare.visits.scheduler import HORIZON

router = APIRouter(route_class=PageRoute, prefix="/manage", include_in_schema=False)

CALENDAR_LIMIT = calendar_view.CALENDAR_LIMIT


@router.get("")
def manage_home(page_user: StaffUserDep) -> Response:
    return see_other("/manage/visits")


# --- visits: calendar and list ------------------------------------------------------------------


def _window(
    view: str, anchor: dt.date, start: str | None, end: str | None, tz: ZoneInfo
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The UTC range a view shows: the list's own dates (its "to" date inclusive), else the
    week or month around `anchor`, from local midnight to local midnight."""
    if view == "list":
        first = parse_date(start)
        last = parse_date(end)
        if last:
            last = last + dt.timedelta(days=1)
    elif view == "week":
        first, last = views.week_range(anchor)
    else:
        first, last = views.month_range(anchor)
    start_from = views.local_midnight_utc(first, tz) if first else None
    start_to = views.local_midnight_utc(last, tz) if last else None
    return start_from, start_to


def _view_context(
    view: str,
    anchor: dt.date,
    rows: list[Visit | calendar_view.PlannedVisit],
    tz: ZoneInfo,
    today: dt.date,
) -> dict[str, Any]:
    """What the week and month calendars draw: the days with their visits, and the links to
    the weeks or months before and after."""
    if view == "week":
        first, last = views.week_range(anchor)
        return {
            "days": views.group_by_local_day(first, last, rows, tz, today, anchor.month),
            "range_label": (first, last - dt.timedelta(days=1)),
            "previous": first - dt.timedelta(days=7),
            "next": last,
        }
    first, last = views.month_range(anchor)
    days = views.group_by_local_day(first, last, rows, tz, today, anchor.month)
    return {
        "weeks": [days[i : i + 7] for i in range(0, len(days), 7)],
        "month": anchor.replace(day=1),
        "previous": views.shift_month(anchor, -1),
        "next": views.shift_month(anchor, 1),
    }


def _link(filters: dict[str, str], **changes: Any) -> str:
    """This page with `changes` made to its filters (the calendar's arrows, the list's pages)."""
    values = {**filters, **{k: str(v) for k, v in changes.items()}}
    return "/manage/visits?" + urlencode({k: v for k, v in values.items() if v})


def _filter_error(page_user: PageUser, exc: Exception) -> str:
    if isinstance(exc, InvalidInput) and exc.loc and exc.loc[-1] in ("start_to", "date"):
        return field_error(page_user, exc)
    return t(page_user, N_("Some of the filters are not valid."))


def _empty_context(
    session: Session, sites: list[Site], site: Site | None, filters: dict[str, str]
) -> dict[str, Any]:
    """The page's frame: the site's choices and the filters as given, no visits yet."""
    return {
        **visit_words(),
        "sites": sites,
        "site": site,
        "timezone": site.timezone if site else "UTC",
        "assignees": (manager_view.site_assignees(session, site.id) if site else []),
        "filters": filters,
        "statuses": list(VisitStatus),
        "error": None,
        "days": [],
        "rows": [],
        "total": 0,
        "more": False,
    }


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
    sites = manager_view.visible_sites(session, page_user.actor)
    site = choose_site(sites, site_id)
    tz = zone(site.timezone if site else "UTC")
    today = utcnow().astimezone(tz).date()
    view = view if view in ("week", "month", "list") else "week"
    site_value = str(site.id) if site else ""
    # In this order in the page's links.
    given = {"date": date, "site_id": site_value, "assignee": assignee, "status": status}
    filters = {"view": view, **{name: value or "" for name, value in given.items()}}
    filters |= {"start": start or "", "end": end or ""}
    context = _empty_context(session, sites, site, filters)
    if site is None:
        return render(request, "manager/visits.html", context)
    listed = view == "list"
    try:
        anchor = parse_date(date, today) or today
        assignee_id = parse_uuid(assignee) if assignee not in (None, "", "site") else None
        statuses = [VisitStatus(status)] if status else None
        page = max(1, min(page, 100_000))
        start_from, start_to = _window(view, anchor, start, end, tz)
        chosen: dict[str, Any] = {
            "site_id": site.id,
            "assignee_user_id": assignee_id,
            "unassigned": assignee == "site",
            "statuses": statuses,
        }
        if listed:
            rows, total = visits.list_visits(
                session=session,
                actor=page_user.actor,
                limit=PAGE_SIZE,
                offset=(page - 1) * PAGE_SIZE,
                start_from=start_from,
                start_to=start_to,
                **chosen,
            )
            context |= {"page": page, "pages": max(1, -(-total // PAGE_SIZE)), "total": total}
        else:
            assert start_from is not None and start_to is not None  # the views' own ranges
            shown = calendar_view.calendar_entries(
                session=session,
                actor=page_user.actor,
                limit=CALENDAR_LIMIT,
                start_from=start_from,
                start_to=start_to,
                now=utcnow(),
                **chosen,
            )
            rows, context["more"] = shown.entries, shown.more
            context |= {"calendar_limit": CALENDAR_LIMIT, "horizon_days": HORIZON.days}
    except (InvalidInput, ValueError) as exc:
        context["error"] = _filter_error(page_user, exc)
        return render(request, "manager/visits.html", context, status_code=422)
    context["residents"] = manager_view.resident_names(session, {r.resident_id for r in rows})
    context["users"] = manager_view.user_names(session, {r.assignee_user_id for r in rows})
    context |= {"rows": rows, "today": today}
    if not listed:
        context |= _view_context(view, anchor, rows, tz, today)

    context["link"] = partial(_link, filters)
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
    site = manager_view.site_of(session, visit.site_id)
    schedule = manager_view.schedule_of(session, visit)
    names = manager_view.resident_names(session, {visit.resident_id})
    return render(
        request,
        "manager/visit.html",
        {
            **visit_words(),
            "visit": visit,
            "schedule": schedule,
            "timezone": site.timezone if site else "UTC",
            "resident_name": names.get(visit.resident_id, "—"),
            "assignee_name": manager_view.user_names(session, {visit.assignee_user_id}).get(
                visit.assignee_user_id  # type: ignore[arg-type]
            ),
            "recorder_name": manager_view.user_names(session, {visit.recorded_by}).get(
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
        raise FormError(redraw, error=field_error(page_user, exc)) from exc
    return see_other(f"/manage/visits/{visit_id}?saved=1")
