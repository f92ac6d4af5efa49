from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

from pydantic import field_validator
from sqlmodel import Field, SQLModel, UniqueConstraint

from welfare.db import UTCDateTime, utcnow

NAME_MAX = 200


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA timezone {value!r}, e.g. 'Asia/Hong_Kong'") from exc
    return value


class SiteBase(SQLModel):
    name: str = Field(min_length=1, max_length=NAME_MAX)
    timezone: str = Field(default="UTC", max_length=64)
    phone_region: str = Field(default="GB", min_length=2, max_length=2)
    office_phone: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=500)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        return _check_timezone(value)


class SiteCreate(SiteBase):
    pass


class SiteUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=NAME_MAX)
    timezone: str | None = Field(default=None, max_length=64)
    phone_region: str | None = Field(default=None, min_length=2, max_length=2)
    office_phone: str | None = Field(default=None, max_length=32)
    address: str | None = Field(default=None, max_length=500)

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)


class Site(SiteBase, table=True):
    __tablename__ = "site"

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


class HouseholdCreate(HouseholdBase):
    site_id: uuid.UUID


class HouseholdUpdate(SQLModel):
    building: str | None = Field(default=None, min_length=1, max_length=50)
    unit: str | None = Field(default=None, min_length=1, max_length=50)
    landline: str | None = Field(default=None, max_length=32)
    notes: str | None = Field(default=None, max_length=2000)


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
