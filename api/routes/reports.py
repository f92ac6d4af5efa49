"""Managers' reports as JSON for the pages to draw, and CSV exports."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse
from sqlmodel import Session

from api.deps import ActorDep, SessionDep, TransactionRoute
from welfare.authz import Actor
from welfare.db import utcnow
from welfare.reports import exports
from welfare.reports import response_times as times
from welfare.reports import visits as completion
from welfare.reports.models import ResponseTimes, VisitCompletion
from welfare.times import Instant

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/reports", tags=["reports"])


@dataclass(frozen=True)
class ReportScope:
    """The site and time range every report and export takes from its query."""

    site_id: uuid.UUID | None
    start: dt.datetime | None
    end: dt.datetime | None

    @property
    def filters(self) -> dict[str, Any]:
        return {"site_id": self.site_id, "start": self.start, "end": self.end}


async def report_scope(
    site_id: uuid.UUID | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
) -> ReportScope:
    return ReportScope(site_id=site_id, start=start, end=end)


ScopeDep = Annotated[ReportScope, Depends(report_scope)]


@router.get("/visit-completion")
def visit_completion(
    session: SessionDep,
    actor: ActorDep,
    scope: ScopeDep,
) -> VisitCompletion:
    """Visits whose window ended in [start, end) (default the last 30 days): due, completed,
    missed and the completion rate, in total, per assignee and per resident."""
    return completion.visit_completion(session=session, actor=actor, now=utcnow(), **scope.filters)


@router.get("/response-times")
def response_times(
    session: SessionDep,
    actor: ActorDep,
    site_id: uuid.UUID | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
    timezone: str = "UTC",
) -> ResponseTimes:
    """Per month: median and 90th percentile seconds from an incident's opening to its first
    message handed to the provider, to a confirmation, and to the hand-over."""
    return times.response_times(
        session=session,
        actor=actor,
        now=utcnow(),
        site_id=site_id,
        start=start,
        end=end,
        timezone=timezone,
    )


def _csv_export(
    export: Callable[..., Iterator[str]],
    name: str,
    session: Session,
    actor: Actor,
    scope: ReportScope,
) -> StreamingResponse:
    """An export read whole inside the request's transaction (it writes its audit row), then
    streamed."""
    lines = list(export(session=session, actor=actor, now=utcnow(), **scope.filters))
    return _csv_response(iter(lines), name)


def _csv_response(lines: Any, name: str) -> StreamingResponse:
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/visits.csv", response_class=StreamingResponse)
def visits_csv(
    session: SessionDep,
    actor: ActorDep,
    scope: ScopeDep,
) -> StreamingResponse:
    """Visits (no notes). Cells that a spreadsheet would read as a formula are quoted."""
    return _csv_export(exports.visits_csv, "visits.csv", session, actor, scope)


@router.get("/incidents.csv", response_class=StreamingResponse)
def incidents_csv(
    session: SessionDep,
    actor: ActorDep,
    scope: ScopeDep,
) -> StreamingResponse:
    """Incidents: times, statuses and outcomes only (no notes, places or health data)."""
    return _csv_export(exports.incidents_csv, "incidents.csv", session, actor, scope)
