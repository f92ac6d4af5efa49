from __future__ import annotations

import datetime as dt
import uuid

from sqlmodel import Field, SQLModel

from welfare.db import UTCDateTime, utcnow


class ResidentTag(SQLModel, table=True):
    """An opaque code printed as a QR label; it says nothing about the person who wears it.

    `code` is the printed code (`welfare.tags.codes`: `K7QM2-XHD9P-RT4WZ`), or for a tag issued
    before printed codes, its URL-safe random token; both are looked up as typed or scanned by
    `welfare.tags.service.find_live_tag`.

    A resident has at most one live tag: issuing a new one revokes the old. Revoked rows stay
    (without the resident's data) so a scan of an old label can be told apart from a typo.
    """

    __tablename__ = "resident_tag"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    resident_id: uuid.UUID = Field(foreign_key="resident.id", index=True, ondelete="CASCADE")
    code: str = Field(max_length=64, unique=True)
    issued_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    issued_by: uuid.UUID | None = None
    revoked_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_by: uuid.UUID | None = None


class TagPublic(SQLModel):
    resident_id: uuid.UUID
    code: str
    url: str
    label_url: str
    issued_at: dt.datetime
