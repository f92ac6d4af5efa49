"""Keeps the lookup's search tables in step with the registry. The only writer of them.

A resident has an entry exactly while a guard may find them: not erased, in a household, with a
live (active or review-overdue) `lost_person_response` consent. The services that change any of
that call `refresh_resident` (or `refresh_household`) in the same transaction, so the index
commits or rolls back with the change; erasure calls `remove_resident(..., purge=True)`.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, insert, update
from sqlmodel import Session, col, select

from welfare.consent.models import Consent, ConsentScope
from welfare.db import upsert
from welfare.lookup.engine import for_dialect
from welfare.lookup.models import (
    LookupEntry,
    LookupName,
    LookupToken,
    LookupVariant,
    LookupWord,
)
from welfare.lookup.pg_trigram import TRIGRAM_INDEXES
from welfare.lookup.sqlite_fts import FTS_TABLE
from welfare.lookup.text import (
    building_key,
    deletes,
    description_field,
    field_tokens,
    fuzzy_words,
    names_field,
    split_names,
    typo_budget,
    unit_key,
)
from welfare.residents.models import Resident
from welfare.sites.models import Household

BATCH = 2000


def is_index_object(name: str | None, type_: str) -> bool:
    """True for the search objects Alembic's comparison must not see (alembic/env.py): the
    text engines' objects that migrations make outside the SQLModel metadata, SQLite's FTS5
    table (and the shadow tables FTS5 makes for itself) and PostgreSQL's GIN indexes."""
    if not name:
        return False
    if type_ == "table":
        return name == FTS_TABLE or name.startswith(FTS_TABLE + "_")
    return type_ == "index" and name in TRIGRAM_INDEXES


def _description(resident: Any) -> str:
    return description_field(
        [
            resident.clothing,
            resident.hair,
            resident.build,
            resident.distinguishing_marks,
            resident.eyes,
            resident.walking_aid,
        ]
    )


def _entry_values(resident: Any, household: Any) -> dict[str, Any]:
    return {
        "resident_id": resident.id,
        "site_id": resident.site_id,
        "building": building_key(household.building)[:50],
        "unit": unit_key(household.unit)[:50],
        "names": names_field([resident.full_name, resident.preferred_name, *resident.aliases]),
        "description": _description(resident),
    }


def _findable(session: Session, resident_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Those of `resident_ids` with a live lost-person consent (overdue review still counts)."""
    rows = session.exec(
        select(Consent.resident_id, Consent.scopes).where(
            col(Consent.resident_id).in_(resident_ids), col(Consent.withdrawn_at).is_(None)
        )
    ).all()
    return {rid for rid, scopes in rows if ConsentScope.lost_person_response.value in scopes}


# --- the vocabulary of name words, for typo tolerance ------------------------------------------


def _add_words(session: Session, counts: Counter[str]) -> None:
    if not counts:
        return
    insert_ = upsert(session)
    words = insert_(LookupWord)
    connection = session.connection()
    connection.execute(
        words.on_conflict_do_update(
            index_elements=["word"], set_={"refs": LookupWord.refs + words.excluded.refs}
        ),
        [{"word": w, "refs": n} for w, n in sorted(counts.items())],
    )
    variants = [
        {"variant": v, "word": w}
        for w in sorted(counts)
        for v in sorted(deletes(w, typo_budget(w)))
    ]
    connection.execute(insert_(LookupVariant).on_conflict_do_nothing(), variants)


def _drop_words(session: Session, counts: Counter[str]) -> None:
    """Count the words down; a word nobody carries any more goes, with its typo keys."""
    if not counts:
        return
    connection = session.connection()
    by_count: dict[int, list[str]] = {}
    for word, n in counts.items():
        by_count.setdefault(n, []).append(word)
    for n, words in by_count.items():
        connection.execute(
            update(LookupWord)
            .where(col(LookupWord.word).in_(words))
            .values(refs=LookupWord.refs - n)
        )
    gone = select(LookupWord.word).where(
        col(LookupWord.word).in_(list(counts)), col(LookupWord.refs) <= 0
    )
    dead = list(session.exec(gone).all())
    if dead:
        connection.execute(delete(LookupVariant).where(col(LookupVariant.word).in_(dead)))
        connection.execute(delete(LookupWord).where(col(LookupWord.word).in_(dead)))


# --- the vocabulary of every name and description word, for PostgreSQL's word index -----------


def _tokens(names: str, description: str) -> Counter[tuple[str, str]]:
    return Counter(
        [("names", t) for t in field_tokens(names)]
        + [("description", t) for t in field_tokens(description)]
    )


def _add_tokens(session: Session, counts: Counter[tuple[str, str]]) -> None:
    if not counts:
        return
    tokens = upsert(session)(LookupToken)
    session.connection().execute(
        tokens.on_conflict_do_update(
            index_elements=["field", "token"],
            set_={"refs": LookupToken.refs + tokens.excluded.refs},
        ),
        [{"field": f, "token": t, "refs": n} for (f, t), n in sorted(counts.items())],
    )


def _drop_tokens(session: Session, counts: Counter[tuple[str, str]]) -> None:
    """Count the words down; a word no entry carries any more is deleted."""
    if not counts:
        return
    connection = session.connection()
    groups: dict[tuple[str, int], list[str]] = {}
    for (field, token), n in counts.items():
        groups.setdefault((field, n), []).append(token)
    for (field, n), tokens in groups.items():
        connection.execute(
            update(LookupToken)
            .where(LookupToken.field == field, col(LookupToken.token).in_(tokens))
            .values(refs=LookupToken.refs - n)
        )
    touched: dict[str, list[str]] = {}
    for field, token in counts:
        touched.setdefault(field, []).append(token)
    for field, tokens in touched.items():
        connection.execute(
            delete(LookupToken).where(
                LookupToken.field == field,
                col(LookupToken.token).in_(tokens),
                col(LookupToken.refs) <= 0,
            )
        )


def _add_names(session: Session, names_by_entry: dict[Any, str]) -> None:
    rows = [
        {"entry_id": entry_id, "name": name}
        for entry_id, names in names_by_entry.items()
        for name in split_names(names)
    ]
    if rows:
        session.connection().execute(insert(LookupName), rows)


# --- one resident -------------------------------------------------------------------------------


def refresh_resident(session: Session, resident_id: uuid.UUID) -> None:
    """Bring one resident's entry in line with the registry: write, rewrite or remove it."""
    session.flush()
    resident = session.get(Resident, resident_id)
    household = (
        session.get(Household, resident.household_id)
        if resident is not None and resident.household_id is not None
        else None
    )
    if (
        resident is None
        or household is None
        or resident.erased_at is not None
        or resident.id not in _findable(session, [resident.id])
    ):
        remove_resident(session, resident_id)
        return
    values = _entry_values(resident, household)
    entry = session.exec(select(LookupEntry).where(LookupEntry.resident_id == resident_id)).first()
    old_words = fuzzy_words(entry.names) if entry else set()
    new_words = fuzzy_words(values["names"])
    old_tokens = _tokens(entry.names, entry.description) if entry else Counter()
    new_tokens = _tokens(values["names"], values["description"])
    if entry is None:
        entry = LookupEntry(**values)
    else:
        for name, value in values.items():
            setattr(entry, name, value)
    session.add(entry)
    session.flush()
    connection = session.connection()
    connection.execute(delete(LookupName).where(col(LookupName.entry_id) == entry.id))
    _add_names(session, {entry.id: entry.names})
    _add_words(session, Counter(new_words - old_words))
    _drop_words(session, Counter(old_words - new_words))
    _add_tokens(session, new_tokens - old_tokens)
    _drop_tokens(session, old_tokens - new_tokens)


def refresh_household(session: Session, household_id: uuid.UUID) -> None:
    """A household's building or unit changed: its residents' entries follow."""
    session.flush()
    for resident_id in session.exec(
        select(Resident.id).where(Resident.household_id == household_id)
    ).all():
        refresh_resident(session, resident_id)


def remove_resident(session: Session, resident_id: uuid.UUID, *, purge: bool = False) -> None:
    """Take a resident out of the lookup. `purge` (erasure) also has the text engine compact
    its index (SQLite's FTS5), so no fragment of the erased names survives in older segments."""
    session.flush()
    entry = session.exec(select(LookupEntry).where(LookupEntry.resident_id == resident_id)).first()
    if entry is not None:
        words = fuzzy_words(entry.names)
        tokens = _tokens(entry.names, entry.description)
        session.delete(entry)
        session.flush()
        _drop_words(session, Counter(words))
        _drop_tokens(session, tokens)
    if purge:
        for_dialect(session).purge(session)


# --- many residents -----------------------------------------------------------------------------


def index_residents(session: Session, resident_ids: Iterable[uuid.UUID]) -> int:
    """The bulk path (seeding, rebuilding): index many residents with a few statements per
    batch. Returns how many entries were written."""
    ids = list(resident_ids)
    written = 0
    for start in range(0, len(ids), BATCH):
        written += _index_batch(session, ids[start : start + BATCH])
    return written


def _index_batch(session: Session, ids: list[uuid.UUID]) -> int:
    session.flush()
    existing = session.exec(
        select(LookupEntry.resident_id, LookupEntry.names, LookupEntry.description).where(
            col(LookupEntry.resident_id).in_(ids)
        )
    ).all()
    if existing:
        session.connection().execute(
            delete(LookupEntry).where(col(LookupEntry.resident_id).in_([r for r, _, _ in existing]))
        )
        _drop_words(session, Counter(w for _, names, _ in existing for w in fuzzy_words(names)))
        gone: Counter[tuple[str, str]] = Counter()
        for _, names, description in existing:
            gone.update(_tokens(names, description))
        _drop_tokens(session, gone)
    findable = _findable(session, ids)
    if not findable:
        return 0
    # Columns, not entities: the caller's own tracked objects stay as they are.
    rows = session.exec(
        select(
            Resident.id,
            Resident.site_id,
            Resident.full_name,
            Resident.preferred_name,
            Resident.aliases,
            Resident.clothing,
            Resident.hair,
            Resident.build,
            Resident.distinguishing_marks,
            Resident.eyes,
            Resident.walking_aid,
            Household.building,
            Household.unit,
        )
        .join(Household, col(Household.id) == Resident.household_id)
        .where(col(Resident.id).in_(list(findable)), col(Resident.erased_at).is_(None))
    ).all()
    entries = [_entry_values(row, row) for row in rows]
    if not entries:
        return 0
    connection = session.connection()
    connection.execute(insert(LookupEntry), entries)
    written = connection.execute(
        select(LookupEntry.id, LookupEntry.names).where(
            col(LookupEntry.resident_id).in_([e["resident_id"] for e in entries])
        )
    ).all()
    _add_names(session, dict(written))
    _add_words(session, Counter(w for e in entries for w in fuzzy_words(e["names"])))
    tokens: Counter[tuple[str, str]] = Counter()
    for e in entries:
        tokens.update(_tokens(e["names"], e["description"]))
    _add_tokens(session, tokens)
    return len(entries)


def rebuild(session: Session) -> int:
    """Empty the search tables and index every resident again (after a change of the rules)."""
    connection = session.connection()
    connection.execute(delete(LookupName))
    connection.execute(delete(LookupEntry))
    connection.execute(delete(LookupVariant))
    connection.execute(delete(LookupWord))
    connection.execute(delete(LookupToken))
    ids = session.exec(select(Resident.id).where(col(Resident.erased_at).is_(None))).all()
    return index_residents(session, ids)
