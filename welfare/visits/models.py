"""Visit schedules (a recurrence in the site's timezone) and visits (their occurrences, in UTC)."""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from pydantic import field_validator, model_validator
from sqlalchemy import Column, Enum, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow
from welfare.times import Day
from welfare.validators import reject_nul_characters


class VisitKind(StrEnum):
    home_visit = "home_visit"
    phone_checkin = "phone_checkin"
    automated_call = "automated_call"


class VisitStatus(StrEnum):
    scheduled = "scheduled"
    reminded = "reminded"  # the assignee was reminded before the window
    overdue = "overdue"  # the window ended without a record; the manager was alerted
    missed = "missed"  # the grace period passed too (or a check-in call went unanswered)
    completed = "completed"  # an outcome was recorded


OPEN_STATUSES = (VisitStatus.scheduled, VisitStatus.reminded, VisitStatus.overdue)


class VisitOutcome(StrEnum):
    well = "well"
    concern = "concern"
    not_home = "not_home"
    refused = "refused"
    hospitalised = "hospitalised"


class ScheduleBase(SQLModel):
    kind: VisitKind
    # RFC 5545 RRULE without DTSTART ("FREQ=WEEKLY;BYDAY=MO,TH"); DTSTART is start_date at
    # window_start, wall time in the site's timezone.
    rrule: str = Field(min_length=6, max_length=500)
    window_start: dt.time
    window_end: dt.time
    assignee_user_id: uuid.UUID | None = None  # None: the site's staff
    start_date: Day
    end_date: Day | None = None
    active: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class ScheduleCreate(ScheduleBase):
    resident_id: uuid.UUID

    @field_validator("window_start", "window_end")
    @classmethod
    def _naive(cls, value: dt.time) -> dt.time:
        if value.tzinfo is not None:
            raise ValueError("a local wall time without offset, e.g. 10:00")
        return value


class ScheduleUpdate(SQLModel):
    kind: VisitKind | None = None
    rrule: str | None = Field(default=None, min_length=6, max_length=500)
    window_start: dt.time | None = None
    window_end: dt.time | None = None
    assignee_user_id: uuid.UUID | None = None
    start_date: Day | None = None
    end_date: Day | None = None
    active: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)

    @field_validator("window_start", "window_end")
    @classmethod
    def _naive(cls, value: dt.time | None) -> dt.time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("a local wall time without offset, e.g. 10:00")
        return value


class VisitSchedule(ScheduleBase, table=True):
    __tablename__ = "visit_schedule"

    kind: VisitKind = Field(sa_type=Enum(VisitKind, native_enum=False, length=20))
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="site.id", index=True, ondelete="CASCADE")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", index=True, ondelete="CASCADE")
    assignee_user_id: uuid.UUID | None = Field(
        default=None, foreign_key="user_account.id", index=True, ondelete="SET NULL"
    )
    # Occurrences exist up to here (UTC); the generator carries on from it.
    generated_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_by: uuid.UUID | None = None
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SchedulePublic(ScheduleBase):
    id: uuid.UUID
    site_id: uuid.UUID
    resident_id: uuid.UUID
    timezone: str
    created_at: dt.datetime
    updated_at: dt.datetime


class Visit(SQLModel, table=True):
    """One occurrence. The unique (schedule, window start) makes generation idempotent."""

    __tablename__ = "visit"
    __table_args__ = (
        UniqueConstraint("schedule_id", "window_start"),
        Index("ix_visit_status_window", "status", "window_start"),
        # Covers the completion report's count (alembic 0030); the calendar reads its order.
        Index(
            "ix_visit_site_window",
            "site_id",
            "window_start",
            "window_end",
            "status",
            "assignee_user_id",
            "resident_id",
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    schedule_id: uuid.UUID = Field(foreign_key="visit_schedule.id", ondelete="CASCADE")
    site_id: uuid.UUID = Field(foreign_key="site.id", ondelete="CASCADE")
    resident_id: uuid.UUID = Field(foreign_key="resident.id", index=True, ondelete="CASCADE")
    kind: VisitKind = Field(sa_type=Enum(VisitKind, native_enum=False, length=20))
    assignee_user_id: uuid.UUID | None = Field(default=None, index=True)
    window_start: dt.datetime = Field(sa_type=UTCDateTime)
    window_end: dt.datetime = Field(sa_type=UTCDateTime)
    status: VisitStatus = Field(
        default=VisitStatus.scheduled, sa_type=Enum(VisitStatus, native_enum=False, length=20)
    )
    outcome: VisitOutcome | None = Field(
        default=None, sa_type=Enum(VisitOutcome, native_enum=False, length=20)
    )
    notes: str | None = Field(default=None, sa_column=Column(Text))  # may hold health words
    follow_up: bool = False
    recorded_by: uuid.UUID | None = None
    recorded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    reminded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    overdue_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    missed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    call_attempts: int = 0
    last_call_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    incident_id: uuid.UUID | None = Field(
        default=None, foreign_key="incident.id", ondelete="SET NULL"
    )
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class VisitPublic(SQLModel):
    id: uuid.UUID
    schedule_id: uuid.UUID
    site_id: uuid.UUID
    resident_id: uuid.UUID
    kind: VisitKind
    assignee_user_id: uuid.UUID | None
    window_start: dt.datetime
    window_end: dt.datetime
    status: VisitStatus
    outcome: VisitOutcome | None
    notes: str | None
    follow_up: bool
    recorded_by: uuid.UUID | None
    recorded_at: dt.datetime | None
    call_attempts: int
    incident_id: uuid.UUID | None


class CalendarEntryPublic(SQLModel):
    """A calendar's entry: a visit (`visit_id` set), or past the scheduler's window an
    occurrence its schedule will bring (`planned`, nothing to record yet)."""

    planned: bool
    visit_id: uuid.UUID | None
    schedule_id: uuid.UUID
    site_id: uuid.UUID
    resident_id: uuid.UUID
    kind: VisitKind
    assignee_user_id: uuid.UUID | None
    window_start: dt.datetime
    window_end: dt.datetime
    status: VisitStatus | None
    outcome: VisitOutcome | None


class VisitRecord(SQLModel):
    outcome: VisitOutcome
    notes: str | None = Field(default=None, max_length=4000)
    follow_up: bool = False
    # Recording before the window opens (up to EARLY_RECORD_LIMIT ahead) must be meant: without
    # this the answer is 409 with `confirm_field: "confirm_early"`.
    confirm_early: bool = False

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class JobMark(SQLModel, table=True):
    """'This one-off effect happened': a consent reminder sent, a flag raised. Inserted once
    (primary key), so a job that runs twice, or on two workers, does it once."""

    __tablename__ = "job_mark"

    key: str = Field(primary_key=True, max_length=200)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CalendarToken(SQLModel, table=True):
    """The secret of a user's iCalendar feed URL; only its SHA-256 is kept."""

    __tablename__ = "calendar_token"

    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
