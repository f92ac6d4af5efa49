"""What the lookup's candidate queries share, whichever text engine runs them: the candidate as
a plain tuple, the bound on how many one query returns, and the per-site variants of a
statement built once."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from sqlalchemy import bindparam
from sqlmodel import Session, col

from welfare.lookup.models import LookupEntry

CANDIDATES = 100  # per candidate query: the bound on the work one lookup can do


class Entry(NamedTuple):
    """A candidate: lookup_entry's columns as a plain tuple. Not an ORM object (nothing to
    track), not a SQLAlchemy Row either: ranking reads a few hundred attributes a lookup, at
    ten times a tuple's cost on a Row."""

    resident_id: uuid.UUID
    building: str
    unit: str
    names: str
    description: str


ENTRY_COLUMNS = tuple(getattr(LookupEntry, name) for name in Entry._fields)


# Statements are built once, LIMIT included (building one costs about as much as running it);
# `sites` is left out for the system actor, who sees every site.
def per_sites(query: Any) -> dict[bool, Any]:
    in_sites = col(LookupEntry.site_id).in_(bindparam("sites", expanding=True))
    return {False: query.limit(CANDIDATES), True: query.where(in_sites).limit(CANDIDATES)}


def fetch_entries(
    session: Session,
    query: dict[bool, Any],
    sites: frozenset[uuid.UUID] | None,
    **params: Any,
) -> list[Entry]:
    """Plain rows through Core: the candidates are data to rank, not objects to track."""
    if sites is not None:
        params["sites"] = list(sites)
    return [
        Entry._make(row) for row in session.connection().execute(query[sites is not None], params)
    ]
