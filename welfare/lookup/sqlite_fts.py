"""SQLite's text engine for the lookup: the FTS5 trigram table `lookup_fts` over lookup_entry's
names and description (migration 0004 makes it and the triggers that keep it in step)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlmodel import Session, col, select

from welfare.lookup.candidates import ENTRY_COLUMNS, Entry, fetch_entries, per_sites
from welfare.lookup.models import LookupEntry

FTS_TABLE = "lookup_fts"

_FTS = sql_table(FTS_TABLE, sql_column("rowid"), sql_column(FTS_TABLE))
# The full-text table drives the join, so LIMIT stops it after enough matches.
_FTS_QUERY = per_sites(
    select(*ENTRY_COLUMNS)
    .select_from(_FTS)
    .join(LookupEntry, col(LookupEntry.id) == _FTS.c.rowid)
    .where(_FTS.c[FTS_TABLE].op("MATCH")(bindparam("match")))
)


class FtsSearch:
    """One lookup's text matches: a MATCH on the FTS5 table per call, nothing to fetch first."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def want(self, column: str, phrases: Iterable[str]) -> None:
        """Nothing to fetch ahead: each match is one statement of its own."""

    def match(
        self, column: str, groups: list[list[str]], sites: frozenset[uuid.UUID] | None
    ) -> list[Entry]:
        expression = " AND ".join(
            "(" + " OR ".join(f'"{p}"' for p in group) + ")" for group in groups
        )
        return fetch_entries(self.session, _FTS_QUERY, sites, match=f"{column} : ({expression})")


class SqliteFts:
    """The text engine `welfare.lookup.engine.for_dialect` picks for SQLite."""

    def search(self, session: Session) -> FtsSearch:
        return FtsSearch(session)

    def typo_keys(self, variant: Any) -> Any:
        return variant.in_(bindparam("keys", expanding=True))

    def purge(self, session: Session) -> None:
        # FTS5 (before 3.42's secure-delete) only marks rows deleted; 'optimize' rewrites the
        # index into one segment without them, and secure_delete zeroes the freed pages.
        session.connection().execute(
            text(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES('optimize')")
        )


ENGINE = SqliteFts()
