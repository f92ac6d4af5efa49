"""The manager pages' frame: who may use them, the words for visit codes and refused fields,
and the look-ups every manager page shares (sites, assignees, names)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import Depends, Form

from api.pages.deps import CSRF_FIELD, PageUser, PageUserDep, t
from api.pages.forms import FormValueRefused
from api.pages.i18n import N_
from api.pages.manager import views
from welfare.authz import Permission, require
from welfare.errors import InvalidInput, NotFound
from welfare.sites.models import Site
from welfare.times import parse_day
from welfare.visits.models import VisitKind, VisitOutcome, VisitStatus

CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD, max_length=200)]
PAGE_SIZE = 50

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


def field_error(page_user: PageUser, exc: InvalidInput) -> str:
    name = str(exc.loc[-1]) if exc.loc else ""
    if name in FIELD_ERRORS:
        return t(page_user, FIELD_ERRORS[name])
    if isinstance(exc, FormValueRefused):
        return exc.words(page_user.language)
    return t(page_user, N_("Some of the values are not valid."))


def parse_uuid(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput("id", "not an id") from None


def choose_site(sites: list[Site], requested: str | None) -> Site | None:
    """The site asked for (404 when it is not one of the user's), else the first."""
    wanted = parse_uuid(requested)
    if wanted is None:
        return sites[0] if sites else None
    for site in sites:
        if site.id == wanted:
            return site
    raise NotFound("site")


def visit_words() -> dict[str, Any]:
    return {
        "status_words": STATUS_WORDS,
        "outcome_words": OUTCOME_WORDS,
        "kind_words": KIND_WORDS,
        "weekday_names": views.WEEKDAY_NAMES,
        "weekday_short": views.WEEKDAY_SHORT,
    }


def parse_date(value: str | None, default: dt.date | None = None) -> dt.date | None:
    if not value:
        return default
    try:
        return parse_day(value)
    except ValueError as exc:
        raise InvalidInput("date", str(exc)) from None
