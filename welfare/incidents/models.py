from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, model_validator
from sqlalchemy import JSON, BigInteger, Column, Enum, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow
from welfare.sites.models import reject_nul_characters


class IncidentKind(StrEnum):
    found = "found"
    missing = "missing"
    welfare_concern = "welfare_concern"


class IncidentStatus(StrEnum):
    open = "open"
    notifying = "notifying"
    confirmed = "confirmed"
    resolved = "resolved"
    cancelled = "cancelled"


CLOSED = (IncidentStatus.resolved, IncidentStatus.cancelled)
RUNNING = (IncidentStatus.open, IncidentStatus.notifying, IncidentStatus.confirmed)
# The database keeps one running incident per resident (migration 0016): two guards reporting
# the same resident at once must not start two escalations to the same family.
_ONE_RUNNING = text("status IN ('open', 'notifying', 'confirmed') AND resident_id IS NOT NULL")


class Condition(StrEnum):
    well = "well"
    distressed = "distressed"
    injured = "injured"


class Outcome(StrEnum):
    handed_over = "handed_over"
    returned_home = "returned_home"
    hospital = "hospital"
    police = "police"
    false_alarm = "false_alarm"


class IncidentCreate(SQLModel):
    kind: IncidentKind = IncidentKind.found
    resident_id: uuid.UUID | None = None
    tag: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=300)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    condition: Condition = Condition.well
    note: str | None = Field(default=None, max_length=2000)
    # An unknown person found; on a missing report, what the resident wore when last seen.
    description: str | None = Field(default=None, max_length=2000)
    site_id: uuid.UUID | None = None  # needed only when no resident is named
    client_request_id: str = Field(min_length=8, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Resolution(SQLModel):
    outcome: Outcome
    handed_to: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class NoteVisibility(StrEnum):
    staff = "staff"  # office staff and above only: the default, a note may hold health data
    everyone = "everyone"  # the guards on the incident too


class NoteCreate(SQLModel):
    text: str = Field(min_length=1, max_length=2000)
    # Omitted: staff only for staff's notes; a guard's note is for everyone on the incident.
    visibility: NoteVisibility | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Incident(SQLModel, table=True):
    __tablename__ = "incident"
    __table_args__ = (
        UniqueConstraint("reported_by", "client_request_id"),
        Index(
            "uq_incident_running_resident",
            "resident_id",
            unique=True,
            sqlite_where=_ONE_RUNNING,
            postgresql_where=_ONE_RUNNING,
        ),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    reference: str = Field(max_length=12, index=True)
    site_id: uuid.UUID = Field(foreign_key="site.id", index=True, ondelete="RESTRICT")
    resident_id: uuid.UUID | None = Field(
        default=None, foreign_key="resident.id", index=True, ondelete="SET NULL"
    )
    kind: IncidentKind = Field(sa_type=Enum(IncidentKind, native_enum=False, length=20))
    status: IncidentStatus = Field(
        default=IncidentStatus.open,
        sa_type=Enum(IncidentStatus, native_enum=False, length=20),
        index=True,
    )
    condition: Condition = Field(
        default=Condition.well, sa_type=Enum(Condition, native_enum=False, length=20)
    )
    reported_by: uuid.UUID | None = Field(default=None, foreign_key="user_account.id")
    client_request_id: str | None = Field(default=None, max_length=64)
    location: str | None = Field(default=None, max_length=300)
    latitude: float | None = None
    longitude: float | None = None
    note: str | None = Field(default=None, sa_column=Column(Text))
    description: str | None = Field(default=None, sa_column=Column(Text))
    escalation: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # When the next escalation step falls due (None: none left, or not worked out yet). The
    # worker's round reads it to open a transaction only for incidents with something due.
    next_step_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    opened_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    first_sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    confirmed_contact_id: uuid.UUID | None = None
    confirmed_via: str | None = Field(default=None, max_length=20)
    handed_over_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: Outcome | None = Field(
        default=None, sa_type=Enum(Outcome, native_enum=False, length=20)
    )
    handed_to: str | None = Field(default=None, max_length=200)
    # A member of the public reported it (welfare/incidents/public_reports.py): guards on duty get
    # it as an alert, and the finder's coordinates on it are erased when it closes.
    public_finder: bool | None = None
    # One photo the guard took (random file names under the media dir; see incidents/photos.py).
    photo_file: str | None = Field(default=None, max_length=100)
    thumbnail_file: str | None = Field(default=None, max_length=100)
    photo_added_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IncidentEvent(SQLModel, table=True):
    """The timeline: one append-only stream per incident. `detail` holds ids, channels,
    statuses and provider codes, never names or phone numbers."""

    __tablename__ = "incident_event"

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    incident_id: uuid.UUID = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    type: str = Field(max_length=40)
    actor_id: uuid.UUID | None = None
    actor: str = Field(max_length=40)  # "guard", "staff", "system", "contact 2"...
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class EscalationPolicy(SQLModel, table=True):
    """Per site, or per resident to override the site's."""

    __tablename__ = "escalation_policy"
    __table_args__ = (UniqueConstraint("site_id", "resident_id"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="site.id", index=True, ondelete="CASCADE")
    resident_id: uuid.UUID | None = Field(
        default=None, foreign_key="resident.id", ondelete="CASCADE"
    )
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: uuid.UUID | None = None


class IncidentResponder(SQLModel, table=True):
    """A guard who claimed an incident: like its reporter, they may see the resident's card and
    household while it is open (break-glass access, each view audited)."""

    __tablename__ = "incident_responder"

    incident_id: uuid.UUID = Field(foreign_key="incident.id", primary_key=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    claimed_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PublicReport(SQLModel, table=True):
    """One press of "alert the office" (whether or not the code was a live tag)."""

    __tablename__ = "public_report"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    tag_key: str = Field(max_length=64, index=True)
    addr_key: str = Field(max_length=64, index=True)
    incident_id: uuid.UUID | None = Field(
        default=None, foreign_key="incident.id", ondelete="SET NULL"
    )
    # The SHA-256 of the finder's status link token (None: a report from before the links).
    token_hash: str | None = Field(default=None, max_length=64, unique=True, index=True)


# --- what the JSON API answers (api/routes/incidents.py) ------------------------------------------


class AcknowledgeBody(BaseModel):
    contact_id: uuid.UUID | None = None


class TimelineEvent(BaseModel):
    at: dt.datetime
    type: str
    actor: str
    detail: dict[str, Any]


class NotificationStatus(BaseModel):
    message_id: uuid.UUID
    contact_id: uuid.UUID | None
    user_id: uuid.UUID | None
    channel: str
    status: str
    status_text: str  # the status in words: "possibly sent" for 'unknown'
    provider_status: str | None
    provider_error: str | None
    step: int | None
    attempts: int
    # Whom it went to: "contact", "guard" (the missing alert to guards on duty), "duty_manager".
    recipient: str
    # What it says: "found_alert", "coming_notice", "all_clear"... (the outbox row's template).
    template: str
    # Which provider carried it ("twilio", "aliyun"...), once it was handed over.
    provider: str | None = None


class IncidentSummary(BaseModel):
    id: uuid.UUID
    reference: str
    kind: str
    status: str
    site_id: uuid.UUID
    resident_id: uuid.UUID | None
    condition: str
    location: str | None
    opened_at: dt.datetime
    confirmed_at: dt.datetime | None
    closed_at: dt.datetime | None
    outcome: str | None


class IncidentDetail(IncidentSummary):
    latitude: float | None
    longitude: float | None
    note: str | None
    description: str | None
    handed_to: str | None
    confirmed_via: str | None
    confirmed_contact_id: uuid.UUID | None
    photo_url: str | None
    timeline: list[TimelineEvent]
    notifications: list[NotificationStatus]
    # Unconfirmed past its target (welfare/incidents/staff_view.py `is_overdue`): the board's
    # red rows.
    overdue: bool
    # The escalation already started a duty-manager step.
    reached_manager: bool


class HouseholdView(BaseModel):
    building: str | None
    unit: str | None
    unit_label: str | None
    site_name: str | None
    address: str | None


class ContactName(BaseModel):
    name: str
    relationship: str
    priority: int
    lives_in_household: bool
    can_collect: bool


class ResidentForResponder(BaseModel):
    incident_id: uuid.UUID
    resident_id: uuid.UUID
    preferred_name: str | None
    full_name: str | None
    languages: list[str]
    approach: str | None
    photo_url: str | None
    places: list[str]
    household: HouseholdView
    contacts: list[ContactName]
