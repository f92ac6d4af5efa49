from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from pydantic import field_validator, model_validator
from sqlalchemy import JSON, Column, Enum
from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow
from welfare.times import Instant
from welfare.validators import reject_nul_characters

DEFAULT_REVIEW_MONTHS = 12


class ConsentScope(StrEnum):
    registry = "registry"
    lost_person_response = "lost_person_response"
    welfare_visits = "welfare_visits"
    photo = "photo"
    share_with_responders = "share_with_responders"
    # A finder's report on the tag's page reaches the family too (the escalation runs).
    finder_alerts = "finder_alerts"
    # The tag's page shows a stranger the preferred name and the resident's care tips.
    public_care_tips = "public_care_tips"


class ConsentState(StrEnum):
    """What a resident's consents add up to (`scopes.derive_state`)."""

    active = "active"
    unverified = "unverified"
    withdrawn = "withdrawn"
    none = "none"


class GivenByKind(StrEnum):
    resident = "resident"
    guardian = "guardian"
    attorney = "attorney"


class ConsentMethod(StrEnum):
    written = "written"
    verbal = "verbal"
    electronic = "electronic"


class ConsentCreate(SQLModel):
    given_by_kind: GivenByKind
    given_by_name: str = Field(min_length=1, max_length=200)
    given_by_relationship: str | None = Field(default=None, max_length=100)
    evidence: str | None = Field(default=None, max_length=1000)
    method: ConsentMethod
    scopes: list[ConsentScope] = Field(min_length=1, max_length=len(ConsentScope))
    given_at: Instant | None = None
    review_due: Instant | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)

    @field_validator("scopes")
    @classmethod
    def _dedupe(cls, value: list[ConsentScope]) -> list[ConsentScope]:
        return list(dict.fromkeys(value))


class ConsentWithdraw(SQLModel):
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Consent(SQLModel, table=True):
    """Who agreed to what, when, and until when it holds; withdrawal keeps the record's bones."""

    __tablename__ = "consent"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    resident_id: uuid.UUID = Field(foreign_key="resident.id", index=True, ondelete="CASCADE")
    given_by_kind: GivenByKind = Field(sa_type=Enum(GivenByKind, native_enum=False, length=20))
    # Personal data of the person who consented: erased on withdrawal.
    given_by_name: str | None = Field(default=None, max_length=200)
    given_by_relationship: str | None = Field(default=None, max_length=100)
    evidence: str | None = Field(default=None, max_length=1000)
    method: ConsentMethod = Field(sa_type=Enum(ConsentMethod, native_enum=False, length=20))
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    recorded_by: uuid.UUID | None = Field(default=None)
    given_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    review_due: dt.datetime = Field(sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    withdrawn_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    withdrawn_by: uuid.UUID | None = Field(default=None)
    withdrawal_reason: str | None = Field(default=None, max_length=500)


class ConsentPublic(SQLModel):
    id: uuid.UUID
    resident_id: uuid.UUID
    given_by_kind: GivenByKind
    given_by_name: str | None
    given_by_relationship: str | None
    evidence: str | None
    method: ConsentMethod
    scopes: list[ConsentScope]
    recorded_by: uuid.UUID | None
    given_at: dt.datetime
    review_due: dt.datetime
    withdrawn_at: dt.datetime | None
    withdrawn_by: uuid.UUID | None
    state: str
