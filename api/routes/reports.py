"""Managers' reports as JSON for the pages to draw, and CSV exports."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.deps import ActorDep, SessionDep, TransactionRoute
from welfare.db import utcnow
from welfare.reports import exports
from welfare.reports import response_times as times
from welfare.reports import visits as completion
from welfare.reports.models import ResponseTimes, VisitCompletion
from welfare.times import Instant

router = APIRouter(route_class=TransactionRoute, prefix="/api/v1/reports", tags=["reports"])


@router.get("/visit-completion")
def visit_completion(
    session: SessionDep,
    actor: ActorDep,
    site_id: uuid.UUID | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
) -> VisitCompletion:
    """Visits whose window ended in [start, end) (default the last 30 days): due, completed,
    missed and the completion rate, in total, per assignee and per resident."""
    return completion.visit_completion(
        session=session, actor=actor, now=utcnow(), site_id=site_id, start=start, end=end
    )


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
    site_id: uuid.UUID | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
) -> StreamingResponse:
    """Visits (no notes). Cells that a spreadsheet would read as a formula are quoted."""
    lines = list(
        exports.visits_csv(
            session=session, actor=actor, now=utcnow(), site_id=site_id, start=start, end=end
        )
    )
    return _csv_response(iter(lines), "visits.csv")


@router.get("/incidents.csv", response_class=StreamingResponse)
def incidents_csv(
    session: SessionDep,
    actor: ActorDep,
    site_id: uuid.UUID | None = None,
    start: Instant | None = None,
    end: Instant | None = None,
) -> StreamingResponse:
    """Incidents: times, statuses and outcomes only (no notes, places or health data)."""
    lines = list(
        exports.incidents_csv(
            session=session, actor=actor, now=utcnow(), site_id=site_id, start=start, end=end
        )
    )
    return _csv_response(iter(lines), "incidents.csv")
