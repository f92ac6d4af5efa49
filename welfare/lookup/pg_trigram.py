"""PostgreSQL's text engine for the lookup: trigrams over the vocabulary of words
(`lookup_token`, which `welfare.lookup.index` keeps in step) and a GIN index over each entry's
names and description as an array of words.

Migrations 0004 and 0009 make the indexes outside the SQLModel metadata; 0014 turns their
`fastupdate` off: a pending list is read whole by every search.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from welfare.lookup.candidates import CANDIDATES, Entry
from welfare.lookup.text import NAME_SEPARATOR

TRIGRAM_INDEXES = (
    "ix_lookup_entry_names_trgm",  # 0004; dropped by 0009
    "ix_lookup_entry_description_trgm",  # 0004; dropped by 0009
    "ix_lookup_token_trgm",
    "ix_lookup_entry_names_words",
    "ix_lookup_entry_description_words",
)
TOKEN_FIELDS = ("names", "description")
SELECTIVE = 4  # a word group this many times commoner than the rarest is not an index condition
# Groups this common (entries carrying one of their words, every group) are looked for first in
# the table's first WINDOW_PAGES pages by plain LIKE, at 0.2 us an entry: the GIN index's
# bitmap costs as much as its posting lists are long (2 ms for two words of 10,000 entries of
# 100,000, however few carry both). Measured at 100,000 entries (about 67 a page), a round
# trip included: the bench's descriptions in 0.5-1.4 ms instead of 0.8-2.2; words common apart
# but rare together pay the window on top of the index, 2.3 ms instead of 1.1.
# Descriptions only: their words come in phrases ("grey coat"), so common words are common
# together. Name words combine freely, two common ones are rarely common together, and the
# window only adds to the index (the bench's typo names: 2.3 ms with it, 1.3 without).
DENSE = 2000
WINDOW_PAGES = 100
WINDOW_COLUMNS = ("description",)


def words_array_sql(column: str) -> str:
    """The expression the PostgreSQL word indexes are built on; a query must repeat it exactly
    (literally: a bind parameter in it would stop the planner from matching the index)."""
    assert column in TOKEN_FIELDS
    return f"string_to_array(translate(lookup_entry.{column}, '|', ' '), ' ')"


_ENTRY_COLUMNS = ", ".join(Entry._fields)


def _driver_rows(session: Session, sql: str, params: list[Any]) -> list[Any]:
    """PostgreSQL: run `sql` (psycopg placeholders) on the session's connection, unprepared.

    For the two statements whose best plan depends on the values (which vocabulary words a
    pattern can find through the trigram index; how many entries carry the words found). Sent
    unprepared, each is planned with its values, as literals would be; psycopg would otherwise
    prepare a statement run five times, and PostgreSQL may then keep a generic plan that cannot
    see the patterns and walks the vocabulary. Fixed SQL text also saves composing a statement
    per lookup, which costs as much as running it. Through SQLAlchemy all the same, for its
    error handling (a lost connection is a 503 and leaves the pool)."""
    connection = session.connection()
    driver = connection.connection.driver_connection
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        return list(connection.exec_driver_sql(sql, tuple(params)).all())
    finally:
        driver.prepare_threshold = threshold


def _pattern(phrase: str) -> str:
    """The vocabulary words a phrase finds, as a LIKE pattern. A phrase is a word, or a short
    word bounded on one or both sides by a separator (`_phrases`); inside a field it can only
    lie within one word, so "the field contains the phrase" is "one of the field's words
    contains the word, starts with it, ends with it or is it". Folded words hold no LIKE
    wildcards."""
    bounds = (NAME_SEPARATOR, " ")
    word = phrase.strip(NAME_SEPARATOR + " ")
    starts, ends = phrase[0] in bounds, phrase[-1] in bounds
    return ("" if starts else "%") + word + ("" if ends else "%")


def _finds(pattern: str, token: str) -> bool:
    """`token LIKE pattern`, for the patterns `_pattern` makes."""
    word = pattern.strip("%")
    if pattern.startswith("%") and pattern.endswith("%"):
        return word in token
    if pattern.startswith("%"):
        return token.endswith(word)
    if pattern.endswith("%"):
        return token.startswith(word)
    return token == word


# Per field: its whole words by the primary key, the rest through the trigram index.
_VOCABULARY_FIELD = "(field = %s AND (token = ANY(%s::text[]) OR token LIKE ANY(%s::text[])))"


class _Vocabulary:
    """PostgreSQL: the vocabulary words each phrase finds, with how many entries carry each.
    A lookup names up front every phrase its tiers may need (`want`); the first text match
    fetches them all in one statement, later tiers find theirs already there."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.wanted: set[tuple[str, str]] = set()
        self.found: dict[tuple[str, str], dict[str, int]] = {}

    def want(self, column: str, phrases: Iterable[str]) -> None:
        self.wanted.update((column, _pattern(p)) for p in phrases)

    def words(self, column: str, phrases: Iterable[str]) -> dict[str, int]:
        keys = {(column, _pattern(p)) for p in phrases}
        if not keys <= self.found.keys():
            self._fetch((keys | self.wanted) - self.found.keys())
        out: dict[str, int] = {}
        for key in keys:
            out.update(self.found[key])
        return out

    def _fetch(self, keys: set[tuple[str, str]]) -> None:
        by_column: dict[str, list[str]] = defaultdict(list)
        for column, pattern in sorted(keys):
            by_column[column].append(pattern)
            self.found[(column, pattern)] = {}
        params: list[Any] = []
        for column, patterns in by_column.items():
            whole = [p for p in patterns if "%" not in p]
            params += [column, whole, [p for p in patterns if "%" in p]]
        sql = "SELECT field, token, refs FROM lookup_token WHERE " + " OR ".join(
            [_VOCABULARY_FIELD] * len(by_column)
        )
        for column, token, refs in _driver_rows(self.session, sql, params):
            for pattern in by_column.get(column, ()):
                if _finds(pattern, token):
                    self.found[(column, pattern)][token] = refs


def _word_match(
    session: Session,
    column: str,
    groups: list[list[str]],
    sites: frozenset[uuid.UUID] | None,
    vocabulary: _Vocabulary,
) -> list[Entry]:
    """PostgreSQL: for each group, the vocabulary words its phrases find (`_Vocabulary`); then
    the entries whose words overlap every group's, from a GIN index over each entry's word
    array, first `CANDIDATES` only.

    The planner sees the words (`_driver_rows`) with the column's element statistics: where
    matches are dense it stops after the first `CANDIDATES`, where they are rare it takes the
    index. Only the selective groups (within `SELECTIVE` times the rarest one's count) are
    index conditions; the common ones (a short word such as "ng" finds every "-ng" name) are
    checked on the rows the index returns (`IS TRUE` keeps them out of the index, whose work
    grows with every posting list it has to merge). When every group of a description is
    common (`DENSE`), the table's first pages are read by LIKE before the index, in the same
    statement."""
    found = [vocabulary.words(column, group) for group in groups]
    if not all(found):
        return []  # a group no indexed word matches: nothing can match every group
    words = words_array_sql(column)
    counts = [sum(f.values()) for f in found]
    rarest = min(counts)
    conditions: list[str] = []
    params: list[Any] = []
    for tokens, count in sorted(zip(found, counts, strict=True), key=lambda fc: fc[1]):
        overlap = f"{words} && %s::text[]"
        conditions.append(overlap if count <= SELECTIVE * rarest else f"({overlap}) IS TRUE")
        params.append(sorted(tokens))
    in_sites = [list(sites)] if sites is not None else []
    if in_sites:
        conditions.append("site_id = ANY(%s::uuid[])")
    sql = f"SELECT {_ENTRY_COLUMNS} FROM lookup_entry WHERE {' AND '.join(conditions)}"
    if rarest < DENSE or column not in WINDOW_COLUMNS:
        rows = _driver_rows(session, f"{sql} LIMIT %s", [*params, *in_sites, CANDIDATES])
        return [Entry._make(row) for row in rows]
    # The window first, the index only past it and only if the window came up short (an Append
    # runs its branches in turn, under the LIMIT). Both give rows in the table's order, as the
    # index's bitmap scan does, so the candidates are those the index alone would have given.
    # The rarest group's LIKE first: most rows fail it, and AND stops at the first that fails.
    by_count = [g for _, g in sorted(zip(counts, groups, strict=True), key=lambda cg: cg[0])]
    contains = [f"lookup_entry.{column} LIKE ANY(%s::text[])"] * len(groups)
    if in_sites:
        contains.append("site_id = ANY(%s::uuid[])")
    window = f"'({WINDOW_PAGES},0)'::tid"
    sql = (
        f"SELECT {_ENTRY_COLUMNS} FROM ("
        f"(SELECT {_ENTRY_COLUMNS} FROM lookup_entry WHERE ctid < {window} AND "
        f"{' AND '.join(contains)}) UNION ALL ({sql} AND ctid >= {window})"
        ") AS candidates LIMIT %s"
    )
    # "Contains the phrase", as the vocabulary's patterns mean it (`_pattern`).
    patterns = [["%" + phrase + "%" for phrase in group] for group in by_count]
    rows = _driver_rows(session, sql, [*patterns, *in_sites, *params, *in_sites, CANDIDATES])
    return [Entry._make(row) for row in rows]


class TrigramSearch:
    """One lookup's text matches: its vocabulary (fetched once, at the first match) and a word
    match per call."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.vocabulary = _Vocabulary(session)

    def want(self, column: str, phrases: Iterable[str]) -> None:
        self.vocabulary.want(column, phrases)

    def match(
        self, column: str, groups: list[list[str]], sites: frozenset[uuid.UUID] | None
    ) -> list[Entry]:
        return _word_match(self.session, column, groups, sites, self.vocabulary)


class PgTrigram:
    """The text engine `welfare.lookup.engine.for_dialect` picks for PostgreSQL."""

    def search(self, session: Session) -> TrigramSearch:
        return TrigramSearch(session)

    def typo_keys(self, variant: Any) -> Any:
        """`variant` among the `keys` parameter as one array parameter (`= ANY`), not an IN
        list of as many parameters as keys, so the probe's text depends only on the number of
        words and the driver's prepared statements save its planning (0.4-0.7 ms for three
        words, where running it takes 0.2)."""
        return variant == any_(bindparam("keys", type_=ARRAY(String)))

    def purge(self, session: Session) -> None:
        """Nothing: compacting after an erasure is FTS5's need; here the erased entry's index
        entries go with its dead row at VACUUM."""


ENGINE = PgTrigram()
