from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import field_validator, model_validator
from sqlalchemy import false, true
from sqlmodel import Field, SQLModel, UniqueConstraint

from welfare.db import UTCDateTime, utcnow
from welfare.times import check_timezone
from welfare.validators import reject_nul_characters

NAME_MAX = 200


def check_office_hours(opens: dt.time | None, closes: dt.time | None) -> None:
    """Office hours are both given or neither, and are not an empty span."""
    if (opens is None) != (closes is None):
        raise ValueError(
            "office_opens and office_closes go together: give both, such as 09:00 and 18:00, "
            "or neither"
        )
    if opens is not None and opens == closes:
        raise ValueError("office_opens and office_closes must differ")


def office_is_open(opens: dt.time | None, closes: dt.time | None, local: dt.time) -> bool:
    """Whether `local` (the site's wall-clock time) is within the hours; no hours: never."""
    if opens is None or closes is None:
        return False
    return opens <= local < closes if opens < closes else (local >= opens or local < closes)


class SiteBase(SQLModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    timezone: str = Field(default="UTC", max_length=64)
    phone_region: str = Field(default="GB", min_length=2, max_length=2)
    office_phone: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=500)
    # The number a finder calls (the tag's page shows it); the call is put through to the office
    # during its hours, else to the family, with this number as caller id (none sees the other's).
    # None: the provider's from-number (WELFARE_TWILIO_FROM_NUMBER).
    voice_number: str | None = Field(default=None, max_length=32)
    # The office's hours in the site's time zone; both or neither (None: no set hours).
    office_opens: dt.time | None = None
    office_closes: dt.time | None = None
    # Two-factor sign-in: staff and managers read medical notes, so new sites require it of
    # them; guards see only the minimal card, so for them it is the site's choice.
    require_second_factor_staff: bool = True
    require_second_factor_guards: bool = False

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return check_timezone(value)

    @model_validator(mode="after")
    def _hours_together(self) -> Any:
        check_office_hours(self.office_opens, self.office_closes)
        return self

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class SiteCreate(SiteBase):
    pass


class SiteUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    timezone: str | None = Field(default=None, max_length=64)
    phone_region: str | None = Field(default=None, min_length=2, max_length=2)
    office_phone: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=500)
    voice_number: str | None = Field(default=None, max_length=32)
    office_opens: dt.time | None = None
    office_closes: dt.time | None = None
    require_second_factor_staff: bool | None = None
    require_second_factor_guards: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Site(SiteBase, table=True):
    __tablename__ = "site"

    # Server defaults as well: the migration adds these columns to tables with rows.
    require_second_factor_staff: bool = Field(
        default=True, sa_column_kwargs={"server_default": true()}
    )
    require_second_factor_guards: bool = Field(
        default=False, sa_column_kwargs={"server_default": false()}
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SitePublic(SiteBase):
    id: uuid.UUID
    created_at: dt.datetime


class HouseholdBase(SQLModel):
    building: str = Field(min_length=1, max_length=50)
    unit: str = Field(min_length=1, max_length=50)
    landline: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class HouseholdCreate(HouseholdBase):
    site_id: uuid.UUID


class HouseholdUpdate(SQLModel):
    building: str | None = Field(default=None, min_length=1, max_length=50)
    unit: str | None = Field(default=None, min_length=1, max_length=50)
    landline: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return reject_nul_characters(data)


class Household(HouseholdBase, table=True):
    __tablename__ = "household"
    __table_args__ = (UniqueConstraint("site_id", "building", "unit"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="site.id", index=True, ondelete="RESTRICT")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def unit_label(self) -> str:
        return f"{self.building}-{self.unit}"


class HouseholdPublic(HouseholdBase):
    id: uuid.UUID
    site_id: uuid.UUID
    unit_label: str
    created_at: dt.datetime
