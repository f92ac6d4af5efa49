"""The lookup's text engines behind one interface: SQLite's FTS5 table (`sqlite_fts`) and
PostgreSQL's trigram vocabulary and word index (`pg_trigram`). The lookup and the index pick one
per dialect here and never ask which database they run on."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlmodel import Session

from welfare.db import dialect_name
from welfare.lookup import pg_trigram, sqlite_fts
from welfare.lookup.candidates import Entry


class TextSearch(Protocol):
    """One lookup's text matching over lookup_entry's `names` or `description`."""

    def want(self, column: str, phrases: Iterable[str]) -> None:
        """Phrases a later `match` may look for, named up front so an engine that must read
        something first reads it once for all of them."""

    def match(
        self, column: str, groups: list[list[str]], sites: frozenset[uuid.UUID] | None
    ) -> list[Entry]:
        """Entries (of `sites`, or all) whose `column` contains, for every group, one of its
        phrases; at most `candidates.CANDIDATES`."""


class TextEngine(Protocol):
    def search(self, session: Session) -> TextSearch:
        """A search for one lookup."""

    def typo_keys(self, variant: Any) -> Any:
        """The condition "`variant` is one of the `keys` parameter", in the form this
        database plans best."""

    def purge(self, session: Session) -> None:
        """After an erasure: leave no fragment of removed entries in the text index."""


_ENGINES: dict[str, TextEngine] = {"sqlite": sqlite_fts.ENGINE, "postgresql": pg_trigram.ENGINE}


def for_dialect(dialect: str | Session | Connection) -> TextEngine:
    return _ENGINES[dialect_name(dialect)]
