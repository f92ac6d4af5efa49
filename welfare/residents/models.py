from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints, field_validator, model_validator
from sqlalchemy import JSON, Column, Enum, Text
from sqlmodel import Field, SQLModel

from welfare.channels import CONTACT_CHANNELS, ChannelKind
from welfare.consent.models import ConsentState
from welfare.db import UTCDateTime, utcnow
from welfare.languages import normalise_language, normalise_languages
from welfare.times import Day
from welfare.validators import reject_nul_characters

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LanguageTag = Annotated[str, StringConstraints(max_length=35), AfterValidator(normalise_language)]
LONG_TEXT = 4000
CARE_TIPS_MAX = 300
CARE_TIPS_LINES = 3


def check_care_tips(value: str | None) -> str | None:
    """Two or three short lines for a stranger: blank lines dropped, at most CARE_TIPS_LINES."""
    if value is None:
        return None
    lines = [" ".join(line.split()) for line in value.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > CARE_TIPS_LINES:
        raise ValueError(
            f"care tips for a stranger are at most {CARE_TIPS_LINES} short lines; "
            "keep only what helps someone look after them for a few minutes"
        )
    return "\n".join(lines) or None


class Sex(StrEnum):
    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class RiskLevel(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class VerifiedVia(StrEnum):
    """How a contact's number was last proved to reach them."""

    sms_link = "sms_link"
    keypress = "keypress"


class WanderingEntry(BaseModel):
    occurred_on: Day
    location: str = Field(min_length=1, max_length=300)
    note: str | None = Field(default=None, max_length=1000)
    incident_id: uuid.UUID | None = None


def _check_birth(birth_year: int | None, birth_date: dt.date | None) -> None:
    if birth_year and birth_date and birth_date.year != birth_year:
        raise ValueError(
            "birth_year and birth_date disagree: give the year of the date, or only one of them"
        )
    if birth_date and birth_date > dt.date.today():
        raise ValueError("birth_date is in the future: give a past date like 1940-05-01")


class ResidentFields(SQLModel):
    """Every descriptive field of a resident; all optional so Update can reuse them."""

    preferred_name: str | None = Field(default=None, max_length=200)
    birth_year: int | None = Field(default=None, ge=1880, le=2100)
    birth_date: Day | None = None
    sex: Sex = Sex.unknown
    height_cm: int | None = Field(default=None, ge=40, le=250)
    build: str | None = Field(default=None, max_length=200)
    hair: str | None = Field(default=None, max_length=200)
    eyes: str | None = Field(default=None, max_length=200)
    distinguishing_marks: str | None = Field(default=None, max_length=1000)
    clothing: str | None = Field(default=None, max_length=1000)
    walking_aid: str | None = Field(default=None, max_length=200)  # "stick", "blue wheelchair"
    care_needs: str | None = Field(default=None, max_length=LONG_TEXT)
    medical_notes: str | None = Field(default=None, max_length=LONG_TEXT)
    approach: str | None = Field(default=None, max_length=LONG_TEXT)
    routines: str | None = Field(default=None, max_length=LONG_TEXT)
    # What a stranger who finds them may read on the tag's page, under the public_care_tips
    # consent scope: two or three short lines ("speaks Mandarin; calm him by talking about his
    # grandson"). Never medical notes, never the unit.
    public_care_tips: str | None = Field(default=None, max_length=CARE_TIPS_MAX)
    risk_level: RiskLevel = RiskLevel.medium
    # The resident's own phone (E.164 once validated): automated check-in calls ring it.
    phone: str | None = Field(default=None, max_length=32)

    @field_validator("public_care_tips")
    @classmethod
    def _care_tips_lines(cls, value: str | None) -> str | None:
        return check_care_tips(value)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class ResidentCreate(ResidentFields):
    household_id: uuid.UUID
    full_name: ShortText
    aliases: list[ShortText] = Field(default_factory=list, max_length=20)
    languages: list[LanguageTag] = Field(default_factory=list, max_length=10)
    places: list[Annotated[str, StringConstraints(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=30
    )
    wandering_history: list[WanderingEntry] = Field(default_factory=list, max_length=500)

    @field_validator("languages")
    @classmethod
    def _dedupe_languages(cls, value: list[str]) -> list[str]:
        return normalise_languages(value)

    @model_validator(mode="after")
    def _birth_consistent(self) -> ResidentCreate:
        _check_birth(self.birth_year, self.birth_date)
        return self


class ResidentUpdate(SQLModel):
    household_id: uuid.UUID | None = None
    full_name: ShortText | None = None
    preferred_name: str | None = Field(default=None, max_length=200)
    aliases: list[ShortText] | None = Field(default=None, max_length=20)
    birth_year: int | None = Field(default=None, ge=1880, le=2100)
    birth_date: Day | None = None
    sex: Sex | None = None
    languages: list[LanguageTag] | None = Field(default=None, max_length=10)
    height_cm: int | None = Field(default=None, ge=40, le=250)
    build: str | None = Field(default=None, max_length=200)
    hair: str | None = Field(default=None, max_length=200)
    eyes: str | None = Field(default=None, max_length=200)
    distinguishing_marks: str | None = Field(default=None, max_length=1000)
    clothing: str | None = Field(default=None, max_length=1000)
    walking_aid: str | None = Field(default=None, max_length=200)
    care_needs: str | None = Field(default=None, max_length=LONG_TEXT)
    medical_notes: str | None = Field(default=None, max_length=LONG_TEXT)
    approach: str | None = Field(default=None, max_length=LONG_TEXT)
    places: list[Annotated[str, StringConstraints(min_length=1, max_length=300)]] | None = Field(
        default=None, max_length=30
    )
    routines: str | None = Field(default=None, max_length=LONG_TEXT)
    public_care_tips: str | None = Field(default=None, max_length=CARE_TIPS_MAX)
    wandering_history: list[WanderingEntry] | None = Field(default=None, max_length=500)
    risk_level: RiskLevel | None = None
    phone: str | None = Field(default=None, max_length=32)

    @field_validator("languages")
    @classmethod
    def _dedupe_languages(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else normalise_languages(value)

    @field_validator("public_care_tips")
    @classmethod
    def _care_tips_lines(cls, value: str | None) -> str | None:
        return check_care_tips(value)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Resident(ResidentFields, table=True):
    __tablename__ = "resident"

    sex: Sex = Field(default=Sex.unknown, sa_type=Enum(Sex, native_enum=False, length=20))
    risk_level: RiskLevel = Field(
        default=RiskLevel.medium, sa_type=Enum(RiskLevel, native_enum=False, length=20)
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="site.id", index=True, ondelete="RESTRICT")
    # Null once consent is withdrawn and the record is erased to a tombstone.
    household_id: uuid.UUID | None = Field(
        default=None, foreign_key="household.id", index=True, ondelete="RESTRICT"
    )
    full_name: str | None = Field(default=None, max_length=200)
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    languages: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    places: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    wandering_history: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    care_needs: str | None = Field(default=None, sa_column=Column(Text))
    medical_notes: str | None = Field(default=None, sa_column=Column(Text))
    approach: str | None = Field(default=None, sa_column=Column(Text))
    routines: str | None = Field(default=None, sa_column=Column(Text))
    photo_file: str | None = Field(default=None, max_length=100)
    thumbnail_file: str | None = Field(default=None, max_length=100)
    photo_updated_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # True: the photo is a drawn portrait (the demo's), not a photograph, and the pages say so.
    # Nullable without a default, so that older migrations' tests can insert model rows.
    photo_illustration: bool | None = None
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    erased_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ResidentPublic(ResidentFields):
    """The staff view of a resident: everything, health data included."""

    id: uuid.UUID
    site_id: uuid.UUID
    household_id: uuid.UUID | None
    unit: str | None
    full_name: str | None
    aliases: list[str]
    languages: list[str]
    places: list[str]
    wandering_history: list[WanderingEntry]
    consent_state: ConsentState
    has_photo: bool
    photo_url: str | None
    photo_updated_at: dt.datetime | None
    photo_illustration: bool | None
    created_at: dt.datetime
    updated_at: dt.datetime
    erased_at: dt.datetime | None


class ResidentSummary(SQLModel):
    """A list row: who and where, no health data (reading that is a separate, audited call)."""

    id: uuid.UUID
    site_id: uuid.UUID
    household_id: uuid.UUID | None
    unit: str | None
    full_name: str | None
    preferred_name: str | None
    aliases: list[str]
    languages: list[str]
    risk_level: RiskLevel
    consent_state: ConsentState
    has_photo: bool
    photo_url: str | None


def _contact_channels(value: list[ChannelKind]) -> list[ChannelKind]:
    """Each once, and only kinds a family contact can be reached by."""
    wrong = [kind for kind in value if kind not in CONTACT_CHANNELS]
    if wrong:
        words = ", ".join(kind.value for kind in CONTACT_CHANNELS)
        staff_only = " (push is for staff phones only)" if ChannelKind.push in wrong else ""
        raise ValueError(f"a contact takes {words}{staff_only}")
    return list(dict.fromkeys(value))


def _check_quiet_hours(start: dt.time | None, end: dt.time | None) -> None:
    if (start is None) != (end is None):
        raise ValueError(
            "quiet_hours_start and quiet_hours_end go together: give both, such as 22:00 and"
            " 07:00, or neither"
        )
    if start is not None and start == end:
        raise ValueError(
            "quiet hours must not start and end at the same time: give a different end, such"
            " as 22:00 to 07:00"
        )


class ContactBase(SQLModel):
    name: str = Field(min_length=1, max_length=200)
    relationship: str = Field(min_length=1, max_length=100)
    phone: str = Field(max_length=32)
    secondary_phone: str | None = Field(default=None, max_length=32)
    language: str = Field(default="en", max_length=35)
    channels: list[ChannelKind] = Field(
        default_factory=lambda: [ChannelKind.sms, ChannelKind.voice],
        sa_column=Column(JSON, nullable=False),
    )
    lives_in_household: bool = False
    can_collect: bool = True
    quiet_hours_start: dt.time | None = None
    quiet_hours_end: dt.time | None = None
    consent_to_contact: bool = True

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class ContactCreate(ContactBase):
    priority: int | None = Field(default=None, ge=1, le=100)
    channels: list[ChannelKind] = Field(
        default_factory=lambda: [ChannelKind.sms, ChannelKind.voice],
        min_length=1,
        max_length=len(CONTACT_CHANNELS),
    )

    @field_validator("language")
    @classmethod
    def _valid_language(cls, value: str) -> str:
        return normalise_language(value)

    @field_validator("channels")
    @classmethod
    def _dedupe_channels(cls, value: list[ChannelKind]) -> list[ChannelKind]:
        return _contact_channels(value)

    @model_validator(mode="after")
    def _quiet_hours_pair(self) -> ContactCreate:
        _check_quiet_hours(self.quiet_hours_start, self.quiet_hours_end)
        return self


class ContactUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    relationship: str | None = Field(default=None, min_length=1, max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    secondary_phone: str | None = Field(default=None, max_length=32)
    language: str | None = Field(default=None, max_length=35)
    channels: list[ChannelKind] | None = Field(
        default=None, min_length=1, max_length=len(CONTACT_CHANNELS)
    )
    lives_in_household: bool | None = None
    can_collect: bool | None = None
    quiet_hours_start: dt.time | None = None
    quiet_hours_end: dt.time | None = None
    consent_to_contact: bool | None = None
    priority: int | None = Field(default=None, ge=1, le=100)

    @field_validator("language")
    @classmethod
    def _valid_language(cls, value: str | None) -> str | None:
        return None if value is None else normalise_language(value)

    @field_validator("channels")
    @classmethod
    def _dedupe_channels(cls, value: list[ChannelKind] | None) -> list[ChannelKind] | None:
        return None if value is None else _contact_channels(value)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Contact(ContactBase, table=True):
    __tablename__ = "contact"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    resident_id: uuid.UUID = Field(foreign_key="resident.id", index=True, ondelete="CASCADE")
    priority: int = Field(ge=1)
    phone_line_type: str = Field(default="mobile", max_length=16)
    sms_opted_out: bool = False
    # When a test SMS link or a test call's key 1 last proved this number reaches the contact
    # (welfare/contact_checks.py); a new number clears it.
    verified_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    verified_via: VerifiedVia | None = Field(
        default=None, sa_type=Enum(VerifiedVia, native_enum=False, length=16)
    )
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ContactTestLink(SQLModel, table=True):
    """The link of one test SMS to one contact (`/v/<token>`): only the token's hash is kept
    (see welfare/contact_checks.py). Dies with the contact, with a new phone number
    and after `expires_at`."""

    __tablename__ = "contact_test_link"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    contact_id: uuid.UUID = Field(foreign_key="contact.id", index=True, ondelete="CASCADE")
    # The staff request that sent it: one link per test, however often it is clicked.
    request_key: str = Field(max_length=120, unique=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: dt.datetime = Field(sa_type=UTCDateTime)
    used_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class ContactPublic(ContactBase):
    id: uuid.UUID
    resident_id: uuid.UUID
    priority: int
    phone_line_type: str
    sms_opted_out: bool
    verified_at: dt.datetime | None = None
    verified_via: VerifiedVia | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
