"""Manager pages: visit completion and incident response times, drawn as SVG, with the CSV links."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.deps import SessionDep
from api.pages.deps import PageUser, t
from api.pages.form_errors import PageRoute
from api.pages.i18n import N_
from api.pages.manager import views
from api.pages.manager.frame import (
    StaffUserDep,
    choose_site,
    visit_words,
)
from api.pages.rendering import render
from welfare.authz import Permission, require
from welfare.db import utcnow
from welfare.reports import response_times
from welfare.reports import visits as visit_reports
from welfare.reports.models import ResponseTimes, TimeSummary, VisitCompletion
from welfare.sites.models import Site
from welfare.visits import manager_view

router = APIRouter(route_class=PageRoute, prefix="/manage", include_in_schema=False)

# --- reports ------------------------------------------------------------------------------------

YEAR = dt.timedelta(days=365)
REPORT_PERIODS = {30: N_("Last 30 days"), 90: N_("Last 90 days"), 365: N_("Last 12 months")}


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


Bar = tuple[str, float | None, str]  # what a bar chart draws: a label, a rate, the rate in words

METRICS = (
    ("to_first_message", N_("Time to the first message sent")),
    ("to_confirmation", N_("Time to confirmation")),
    ("to_hand_over", N_("Time to hand-over")),
)


def _completion_bars(
    session: Session, page_user: PageUser, completion: VisitCompletion
) -> tuple[list[Bar], list[Bar]]:
    """One bar per assignee (the site's staff in the user's words) and one per resident."""
    staff_word = t(page_user, N_("Site staff"))
    assignees = [
        (row.assignee if row.assignee_user_id else staff_word, row.rate, views.percent(row.rate))
        for row in completion.by_assignee
    ]
    names = manager_view.resident_names(
        session, {row.resident_id for row in completion.by_resident}
    )
    residents = [
        (names.get(row.resident_id, "—"), row.rate, views.percent(row.rate))
        for row in completion.by_resident
    ]
    return assignees, residents


def _time_charts(page_user: PageUser, times: ResponseTimes) -> list[dict[str, Any]]:
    """A line chart per measure (median and 90th percentile in minutes, per month), with the
    table of its figures beside it."""
    months = [m.month for m in times.months]
    charts = []
    for key, title in METRICS:
        summaries: list[TimeSummary] = [getattr(m, key) for m in times.months]
        median = [_minutes(summary.median_seconds) for summary in summaries]
        p90 = [_minutes(summary.p90_seconds) for summary in summaries]
        series = [
            (t(page_user, N_("Median")), "series-median", median),
            (t(page_user, N_("90th percentile")), "series-p90", p90),
        ]
        rows = [
            (m.month, m.incidents, summary.count, views.format_minutes(a), views.format_minutes(b))
            for m, summary, a, b in zip(times.months, summaries, median, p90, strict=True)
        ]
        charts.append(
            {"key": key, "title": title, "chart": views.line_chart(months, series), "rows": rows}
        )
    return charts


def _csv_links(site: Site, completion: VisitCompletion, now: dt.datetime) -> dict[str, str]:
    """The exports of what the page shows: the visits of its period, a year of incidents."""
    visits_period = {"start": completion.start.isoformat(), "end": completion.end.isoformat()}
    incidents_period = {"start": (now - YEAR).isoformat(), "end": now.isoformat()}
    return {
        "visits_csv": "/api/v1/reports/visits.csv?"
        + urlencode({"site_id": site.id, **visits_period}),
        "incidents_csv": "/api/v1/reports/incidents.csv?"
        + urlencode({"site_id": site.id, **incidents_period}),
    }


@router.get("/reports")
def reports_page(
    request: Request,
    session: SessionDep,
    page_user: StaffUserDep,
    site_id: str | None = None,
    days: int = 30,
) -> Response:
    require(page_user.actor, Permission.reports_read)
    sites = manager_view.visible_sites(session, page_user.actor)
    site = choose_site(sites, site_id)
    days = days if days in REPORT_PERIODS else 30
    context: dict[str, Any] = {
        **visit_words(),
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
    completion = visit_reports.visit_completion(
        session=session,
        actor=page_user.actor,
        now=now,
        site_id=site.id,
        start=now - dt.timedelta(days=days),
        end=now,
    )
    times = response_times.response_times(
        session=session,
        actor=page_user.actor,
        now=now,
        site_id=site.id,
        start=now - YEAR,
        end=now,
        timezone=site.timezone,
    )
    assignee_bars, resident_bars = _completion_bars(session, page_user, completion)
    context.update(
        completion=completion,
        times=times,
        assignee_chart=views.bar_chart(assignee_bars),
        resident_chart=views.bar_chart(resident_bars),
        assignee_rows=list(zip(assignee_bars, completion.by_assignee, strict=True)),
        resident_rows=list(zip(resident_bars, completion.by_resident, strict=True)),
        charts=_time_charts(page_user, times),
        percent=views.percent,
        **_csv_links(site, completion, now),
    )
    return render(request, "manager/reports.html", context)
