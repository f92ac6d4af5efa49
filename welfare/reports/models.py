"""What the reports return: the shapes of `/api/v1/reports/*` and what the manager's pages draw."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel import SQLModel


class Completion(SQLModel):
    """Visits due in a period, how many were completed or missed, and the completion rate
    (None when none were due)."""

    due: int
    completed: int
    missed: int
    rate: float | None


class AssigneeCompletion(Completion):
    assignee_user_id: uuid.UUID | None  # None: the site's staff
    assignee: str


class ResidentCompletion(Completion):
    resident_id: uuid.UUID


class VisitCompletion(SQLModel):
    start: dt.datetime
    end: dt.datetime
    site_id: uuid.UUID | None
    total: Completion
    by_assignee: list[AssigneeCompletion]
    by_resident: list[ResidentCompletion]


class TimeSummary(SQLModel):
    """How many incidents reached a point, and the median and 90th percentile of the seconds
    they took (None when none did)."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None


class MonthResponseTimes(SQLModel):
    month: str  # YYYY-MM in the report's timezone
    incidents: int
    to_first_message: TimeSummary
    to_confirmation: TimeSummary
    to_hand_over: TimeSummary


class ResponseTimes(SQLModel):
    start: dt.datetime
    end: dt.datetime
    site_id: uuid.UUID | None
    timezone: str
    months: list[MonthResponseTimes]
