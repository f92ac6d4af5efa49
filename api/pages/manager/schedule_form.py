"""The schedule form: its fields as the browser sends them, and the typed values (or the field
to put right, in the user's words) that the visits service takes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Depends, Form

from api.pages.deps import PageUser, t
from api.pages.i18n import N_
from api.pages.manager import views
from api.pages.manager.frame import field_error, parse_uuid
from welfare.errors import InvalidInput
from welfare.times import parse_day
from welfare.visits.models import VisitKind


def read_schedule_form(
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


def schedule_values(page_user: PageUser, form: dict[str, Any]) -> dict[str, Any]:
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
    values["assignee_user_id"] = parse_uuid(form["assignee"]) if form["assignee"] else None
    values["active"] = form["active"]
    return values


EXTRA_FIELD_ERRORS = {
    "kind_choice": N_("Choose a kind of visit."),
    "end_date_format": N_("Give the end date as a date, or leave it empty."),
    "id": N_("Choose from the list."),
}


def schedule_error(page_user: PageUser, exc: InvalidInput) -> str:
    name = str(exc.loc[-1]) if exc.loc else ""
    if name == "rule_builder":
        return t(page_user, exc.message)
    if name in EXTRA_FIELD_ERRORS:
        return t(page_user, EXTRA_FIELD_ERRORS[name])
    return field_error(page_user, exc)


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
    return read_schedule_form(
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
