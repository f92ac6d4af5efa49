"""The guard lookup's search tables and its card.

The search tables hold a folded copy of what a guard may search by (names, unit, description
words) for residents who may be found by a lookup: not erased, with a live lost-person consent.
Only `welfare.lookup.index` writes them. On SQLite an FTS5 trigram table (`lookup_fts`, kept in
step by triggers) indexes `names` and `description`; on PostgreSQL a GIN index over each field's
words does, with a trigram index over the vocabulary (`lookup_token`). Migrations 0004 and 0009
create these outside this metadata (see `alembic/env.py`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from welfare.consent.models import ConsentState


class LookupEntry(SQLModel, table=True):
    __tablename__ = "lookup_entry"
    __table_args__ = (Index("ix_lookup_entry_unit_building", "unit", "building"),)

    # An integer key: FTS5 addresses rows of an external-content table by integer rowid.
    id: int | None = Field(default=None, primary_key=True)
    resident_id: uuid.UUID = Field(foreign_key="resident.id", unique=True, ondelete="CASCADE")
    # Not indexed on its own: a site holds nearly every entry, so the planner must not pick it.
    site_id: uuid.UUID
    building: str = Field(default="", max_length=50)
    unit: str = Field(default="", max_length=50)
    names: str = Field(default="", sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))


class LookupName(SQLModel, table=True):
    """Each folded name of an entry, for exact-name matches by B-tree (a trigram scan over a
    common name costs milliseconds; this costs a seek)."""

    __tablename__ = "lookup_name"
    __table_args__ = (Index("ix_lookup_name_name", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="lookup_entry.id", index=True, ondelete="CASCADE")
    name: str = Field(sa_column=Column(Text, nullable=False))


class LookupWord(SQLModel, table=True):
    """A Latin-script name word and how many indexed residents carry it; the word goes (with
    its typo keys) when the last of them does, so erasure leaves no vocabulary behind."""

    __tablename__ = "lookup_word"

    word: str = Field(primary_key=True, max_length=200)
    refs: int = Field(default=0)


class LookupVariant(SQLModel, table=True):
    """Symmetric-delete typo keys: `variant` is `word` with up to two letters left out."""

    __tablename__ = "lookup_variant"
    __table_args__ = (Index("ix_lookup_variant_word", "word"),)

    variant: str = Field(primary_key=True, max_length=200)
    word: str = Field(
        primary_key=True, max_length=200, foreign_key="lookup_word.word", ondelete="CASCADE"
    )


class LookupToken(SQLModel, table=True):
    """Every distinct word of the indexed names and descriptions, and how many entries carry
    it. On PostgreSQL a query word is first matched against these short strings (a trigram
    index), then the entries carrying the words found come from a GIN index over each entry's
    word array. A word goes when the last entry carrying it does, so erasure leaves none behind."""

    __tablename__ = "lookup_token"

    field: str = Field(primary_key=True, max_length=12)  # names | description
    token: str = Field(sa_column=Column(Text, primary_key=True))
    refs: int = Field(default=0)


class LookupCard(SQLModel):
    """What a guard sees: enough to recognise, approach and take home. No health data, no
    contacts, no phone numbers (the model has no field for them)."""

    resident_id: uuid.UUID
    site_id: uuid.UUID
    preferred_name: str | None
    unit: str | None
    languages: list[str]
    approach: str | None
    # How to recognise them (what the description search looks in).
    height_cm: int | None = None
    build: str | None = None
    hair: str | None = None
    eyes: str | None = None
    clothing: str | None = None
    distinguishing_marks: str | None = None
    walking_aid: str | None = None
    photo_url: str | None
    photo_illustration: bool = False  # the photo is a drawn portrait (the demo's)
    consent_state: ConsentState
    unverified: bool
    score: int
    matched: str  # tag | unit | name | description
    # The query's words (folded, see welfare.lookup.text.fold) found in the name or the
    # description: why this card is here, for the page to highlight.
    matched_terms: list[str] = []


class LookupResponse(SQLModel):
    items: list[LookupCard]
    total: int
