"""The guard lookup: who is this person? By tag, flat, name (with typos) or description.

Candidates come from the search tables (`welfare.lookup.index`) through indexes only: the FTS5
trigram table on SQLite (`sqlite_fts`); on PostgreSQL the word vocabulary (trigram index over
short words) and a GIN index over each entry's words (`pg_trigram`); B-trees for flats, exact
names and typo keys. The text engine is picked once per lookup (`engine.for_dialect`). At
most a few hundred candidates are ranked in Python; the best `limit` become cards, checked once
more against the registry and the consents before anything is shown.

Round trips are the cost that matters (each is a wait on a busy machine), so a name or
description lookup asks in as few statements as it can: one probe (which words start a name
word, their typo keys, the exact-name matches), on PostgreSQL one vocabulary read for every
phrase any tier may need, one candidate query per tier that has room, then the cards.

Ranking, best first: tag (1000) > flat with building (900) > flat in any building (850) > exact
name, preferred name or alias (800) > every word found in a name (650-750) > name with typos
(401-600) > description words (300-350).
"""

from __future__ import annotations

import functools
import heapq
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, exists, func, true
from sqlmodel import Session, col, select

from welfare.audit.service import AuditSubject
from welfare.audit.service import record as audit_record
from welfare.audit.service import record_many as audit_record_many
from welfare.authz import Actor, Permission, require_site, visible_site_ids
from welfare.consent.models import Consent, ConsentScope, ConsentState
from welfare.consent.scopes import derive_state, live_scopes
from welfare.db import utcnow
from welfare.errors import InvalidInput, NotFound
from welfare.lookup.candidates import ENTRY_COLUMNS, Entry, fetch_entries, per_sites
from welfare.lookup.engine import TextEngine, TextSearch, for_dialect
from welfare.lookup.models import (
    LookupCard,
    LookupEntry,
    LookupName,
    LookupVariant,
    LookupWord,
)
from welfare.lookup.text import (
    NAME_SEPARATOR,
    deletes,
    edit_distance,
    fold,
    looks_like_tag,
    parse_unit,
    split_names,
    typo_budget,
)
from welfare.residents.models import Resident
from welfare.residents.photos import PhotoStore
from welfare.settings import Settings
from welfare.sites.models import Household
from welfare.tags import codes
from welfare.tags.models import ResidentTag

MAX_QUERY = 200
MAX_LIMIT = 50
STOPWORDS = {"a", "an", "and", "the", "with", "in", "of", "wearing", "has", "uses", "on"}

SCORE_TAG = 1000
SCORE_UNIT = 900
SCORE_ANY_BUILDING = 850
SCORE_EXACT_NAME = 800
SCORE_NAME_WORDS = 650  # + up to 100 for whole words
SCORE_FUZZY = 600  # - 50 per edit, floor 401
SCORE_DESCRIPTION = 300  # + up to 50 for whole words


@dataclass
class _Hit:
    entry: Entry
    score: int
    matched: str
    words: tuple[str, ...] = ()  # the query's words, to look for in the field that matched

    @property
    def terms(self) -> tuple[str, ...]:
        """The query's words found in the field that matched; asked of the cards shown only,
        not of every candidate ranked."""
        field = self.entry.description if self.matched == "description" else self.entry.names
        return _found_terms(field, self.words)


def lookup(
    *,
    session: Session,
    actor: Actor,
    q: str | None = None,
    tag: str | None = None,
    limit: int = 10,
) -> list[LookupCard]:
    """Cards for the residents a guard may be looking at, best first. Audited every time: one
    entry per resident shown (with the kind of query and the card's rank), never the query (it
    may be a name)."""
    sites = visible_site_ids(actor, Permission.guard_ops)
    limit = max(1, min(limit, MAX_LIMIT))
    hits, kind = find(session=session, sites=sites, q=q, tag=tag, limit=limit)
    shown = _cards(session, actor, hits, limit)
    audit_lookup(session=session, actor=actor, by_tag=tag is not None, kind=kind, shown=shown)
    return shown


# The three parts of a lookup, apart so that bench/lookup.py can time each on its own.


def find(
    *,
    session: Session,
    sites: frozenset[uuid.UUID] | None,
    q: str | None = None,
    tag: str | None = None,
    limit: int = 10,
) -> tuple[list[_Hit], str]:
    """The candidates (from the search tables only) and the kind of query they answer; `limit`
    is the number of cards to come (1 to MAX_LIMIT), which decides the tiers that have room."""
    if (q is None) == (tag is None):
        raise InvalidInput("q", "give either q (flat, name or description) or tag, not both")
    if tag is not None:
        code = codes.read_typed(tag)
        if not code.forms:
            raise InvalidInput("tag", "a tag code is 1 to 64 characters")
        hits = _by_tag(session, code, sites)
        if not hits and code.mistyped:
            raise codes.MistypedCode()
        return hits, "tag"
    assert q is not None
    if not q.strip():
        raise InvalidInput("q", "type a flat, a name or a few words of description")
    if len(q) > MAX_QUERY:
        raise InvalidInput("q", f"at most {MAX_QUERY} characters")
    return _by_query(session, q.strip(), sites, limit)


def audit_lookup(
    *, session: Session, actor: Actor, by_tag: bool, kind: str, shown: list[LookupCard]
) -> None:
    """One entry per card shown, all with the lookup's own id as entity_id, so that "who was
    shown this resident" is a filter on resident_id; a lookup that showed nobody still leaves
    one entry. A query's kind is its best card's (a tag lookup's is always "tag")."""
    if shown and not by_tag:
        kind = shown[0].matched
    subjects = [
        AuditSubject(c.resident_id, c.site_id, {"kind": kind, "rank": rank, "shown": len(shown)})
        for rank, c in enumerate(shown, start=1)
    ] or [
        AuditSubject(
            None,
            next(iter(actor.site_ids)) if len(actor.site_ids) == 1 else None,
            {"kind": kind, "shown": 0},
        )
    ]
    audit_record_many(
        session,
        actor=actor,
        action="lookup.tag" if by_tag else "lookup.search",
        entity="lookup",
        entity_id=uuid.uuid4(),
        subjects=subjects,
    )


# --- candidates ---------------------------------------------------------------------------------


_TAG_QUERY = per_sites(
    select(*ENTRY_COLUMNS)
    .join(ResidentTag, col(ResidentTag.resident_id) == col(LookupEntry.resident_id))
    .where(
        col(ResidentTag.code).in_(bindparam("codes", expanding=True)),
        col(ResidentTag.revoked_at).is_(None),
    )
)
_UNIT_QUERY = {
    with_building: per_sites(
        select(*ENTRY_COLUMNS).where(
            LookupEntry.unit == bindparam("unit"),
            *([LookupEntry.building == bindparam("building")] if with_building else []),
        )
    )
    for with_building in (False, True)
}
_EXACT_NAME_QUERY = per_sites(
    select(*ENTRY_COLUMNS)
    .join(LookupName, col(LookupName.entry_id) == col(LookupEntry.id))
    .where(LookupName.name == bindparam("name"))
)


def _variants(engine: TextEngine) -> Any:
    """The indexed typo keys among `keys`, as "variant word" pairs (both are ASCII letters only,
    see `typo_budget`), the keys passed as the engine plans them best."""
    variant = col(LookupVariant.variant)
    keys = engine.typo_keys(variant)
    pairs = func.aggregate_strings(variant + " " + LookupVariant.word, ",")
    return select(pairs).where(keys).scalar_subquery()


@functools.cache
def _probe_query(count: int, in_sites: bool, engine: TextEngine) -> Any:
    """For `count` words at once: does any indexed name word start with word i (one B-tree
    range probe each), which of their typo keys are indexed, with their words, and which entries
    carry the query as a whole name. One round trip for all: the probe's single row joined to
    the exact matches (no match: one row with NULL entry columns)."""
    word = col(LookupWord.word)
    probe = select(
        *(
            exists(
                select(LookupWord.word).where(
                    word >= bindparam(f"low{i}"), word < bindparam(f"high{i}")
                )
            ).label(f"k{i}")
            for i in range(count)
        ),
        _variants(engine).label("variants"),
    ).subquery("probe")
    exact = _EXACT_NAME_QUERY[in_sites].subquery("exact")
    return select(probe, exact).select_from(probe.outerjoin(exact, true()))


def _by_tag(
    session: Session, code: codes.TypedCode, sites: frozenset[uuid.UUID] | None
) -> list[_Hit]:
    """By the stored forms a typed code may take (`codes.read_typed`)."""
    if not code.forms:
        return []
    rows = fetch_entries(session, _TAG_QUERY, sites, codes=list(code.forms))
    return [_Hit(entry, SCORE_TAG, "tag") for entry in rows]


def _by_query(
    session: Session, q: str, sites: frozenset[uuid.UUID] | None, limit: int
) -> tuple[list[_Hit], str]:
    if looks_like_tag(q):
        hits = _by_tag(session, codes.read_typed(q), sites)
        if hits:
            return hits, "tag"
    readings = parse_unit(q)
    if readings:
        return _by_unit(session, readings, sites), "unit"
    folded = fold(q)
    if not folded:
        return [], "name"
    words = folded.split()
    engine = for_dialect(session)
    probe = _probe(session, engine, folded, words, sites)
    # Every phrase the name and description tiers may look for, named before the first match.
    search = engine.search(session)
    search.want("names", [p for w in words if probe.known.get(w, True) for p in _phrases(w)])
    search.want("names", [n for near in probe.near.values() for n in near])
    described = _description_words(folded)
    search.want("description", [p for w in described for p in _phrases(w)])
    hits = _by_name(folded, words, probe, sites, limit, search)
    name_words = tuple(words)
    for hit in hits:
        hit.words = name_words
    if len({h.entry.resident_id for h in hits}) < limit:
        # Descriptions rank below every name match: look only when names leave room.
        hits += _by_description(described, sites, search)
    return hits, "name"


def _found_terms(field: str, words: tuple[str, ...]) -> tuple[str, ...]:
    """The query's words that occur in a names or description field (a typo does not)."""
    return tuple(w for w in dict.fromkeys(words) if w in field)


def _by_unit(session: Session, readings: list, sites: frozenset[uuid.UUID] | None) -> list[_Hit]:
    hits: list[_Hit] = []
    for reading in readings:
        with_building = reading.building is not None
        score = SCORE_UNIT if with_building else SCORE_ANY_BUILDING
        params = {"building": reading.building} if with_building else {}
        rows = fetch_entries(
            session, _UNIT_QUERY[with_building], sites, unit=reading.unit, **params
        )
        hits += [_Hit(e, score, "unit") for e in rows]
    return hits


def _phrases(word: str) -> list[str]:
    """Substrings to look for: a short word (1-2 characters, e.g. a Chinese given name) only at
    a word's start or end, padded to the three characters a trigram index needs."""
    if len(word) >= 3:
        return [word]
    bounds = (NAME_SEPARATOR, " ")
    if len(word) == 2:
        return [b + word for b in bounds] + [word + b for b in bounds]
    return [a + word + b for a in bounds for b in bounds]


@dataclass
class _Probe:
    known: dict[str, bool]  # per typo-budget word: does any indexed name word start with it?
    near: dict[str, dict[str, int]]  # per word: indexed name words within its budget, distance
    exact: list[Entry]  # the entries carrying the query as one of their names


def _probe(
    session: Session,
    engine: TextEngine,
    folded: str,
    words: list[str],
    sites: frozenset[uuid.UUID] | None,
) -> _Probe:
    """What the name vocabulary says about the query, in one statement: which Latin words
    start an indexed name word (one none starts cannot be in a name as typed, so the scans that
    could only come back empty are skipped), the indexed name words within each one's typo
    budget, and the exact-name matches (a whole name is made of name words, so asking for them
    before knowing the words is never wrong, only sometimes unneeded)."""
    fuzzy = list(dict.fromkeys(w for w in words if typo_budget(w)))
    if not fuzzy:
        return _Probe(
            {},
            {w: {} for w in words},
            fetch_entries(session, _EXACT_NAME_QUERY, sites, name=folded),
        )
    keys = {w: deletes(w, typo_budget(w)) for w in fuzzy}
    params: dict[str, Any] = {"keys": sorted(set().union(*keys.values())), "name": folded}
    for i, prefix in enumerate(fuzzy):
        params[f"low{i}"] = prefix
        params[f"high{i}"] = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    if sites is not None:
        params["sites"] = list(sites)
    statement = _probe_query(len(fuzzy), sites is not None, engine)
    rows = session.connection().execute(statement, params).all()
    starts, pairs = rows[0][: len(fuzzy)], rows[0][len(fuzzy)]
    exact = [
        Entry._make(getattr(row, name) for name in Entry._fields)
        for row in rows
        if row.resident_id is not None
    ]
    by_key: dict[str, set[str]] = defaultdict(set)
    for pair in (pairs or "").split(","):
        if pair:
            variant, word = pair.split(" ")
            by_key[variant].add(word)
    near: dict[str, dict[str, int]] = {}
    for w in words:
        found: dict[str, int] = {}
        for key in keys.get(w, ()):
            for candidate in by_key.get(key, ()):
                if candidate != w and candidate not in found:
                    distance = edit_distance(w, candidate, typo_budget(w))
                    if distance <= typo_budget(w):
                        found[candidate] = distance
        near[w] = found
    return _Probe(dict(zip(fuzzy, map(bool, starts), strict=True)), near, exact)


def _by_name(
    folded: str,
    words: list[str],
    probe: _Probe,
    sites: frozenset[uuid.UUID] | None,
    limit: int,
    search: TextSearch,
) -> list[_Hit]:
    """Tier by tier, each only while the tiers above leave room in the first `limit`: exact
    names, then every word somewhere in a name, then names within the typo budget."""
    known, near = probe.known, probe.near
    hits: list[_Hit] = []
    if all(known.values()):
        hits = [_Hit(entry, SCORE_EXACT_NAME, "name") for entry in probe.exact]
        if len(hits) < limit:
            groups = [_phrases(w) for w in words]
            rows = search.match("names", groups, sites)
            hits += _scored(rows, folded, words, {})
    if len({h.entry.resident_id for h in hits}) < limit and known:
        groups = [sorted({*(_phrases(w) if known.get(w, True) else ()), *near[w]}) for w in words]
        if any(near.values()) and all(groups):
            rows = search.match("names", groups, sites)
            hits += _scored(rows, folded, words, near)
    return hits


def _scored(
    rows: list[Entry], folded: str, words: list[str], near: dict[str, dict[str, int]]
) -> list[_Hit]:
    hits = []
    # Entries sharing a names field (namesakes) are scored once.
    scores: dict[str, int | None] = {}
    for entry in rows:
        if entry.names in scores:
            score = scores[entry.names]
        else:
            score = scores[entry.names] = _name_score(entry.names, folded, words, near)
        if score is not None:
            hits.append(_Hit(entry, score, "name"))
    return hits


def _name_score(
    names: str, folded: str, words: list[str], near: dict[str, dict[str, int]]
) -> int | None:
    each = split_names(names)
    if folded in each:
        return SCORE_EXACT_NAME
    tokens = {t for n in each for t in n.split()}
    whole = 0
    distance = 0
    for w in words:
        if w in tokens:
            whole += 1
        elif any(t.startswith(w) or t.endswith(w) for t in tokens) or (len(w) >= 3 and w in names):
            pass
        else:
            found = [d for candidate, d in near.get(w, {}).items() if candidate in tokens]
            if not found:
                return None
            distance += min(found)
    if distance == 0:
        return SCORE_NAME_WORDS + round(100 * whole / len(words))
    return max(SCORE_FUZZY - 50 * distance, SCORE_DESCRIPTION + 101)


def query_terms(q: str | None) -> list[str]:
    """The words of a typed query a page highlights on a card (folded, stopwords left out)."""
    folded = fold((q or "")[:MAX_QUERY])
    return list(dict.fromkeys(_description_words(folded))) if folded else []


def _description_words(folded: str) -> list[str]:
    return [w for w in folded.split() if w not in STOPWORDS] or folded.split()


def _by_description(
    words: list[str], sites: frozenset[uuid.UUID] | None, search: TextSearch
) -> list[_Hit]:
    hits = []
    groups = [_phrases(w) for w in words]
    described = tuple(words)
    # Common descriptions recur among the candidates ("grey coat"): each is scored once.
    scores: dict[str, int] = {}
    for entry in search.match("description", groups, sites):
        score = scores.get(entry.description)
        if score is None:
            tokens = set(entry.description.replace(NAME_SEPARATOR, " ").split())
            whole = sum(1 for w in words if w in tokens)
            score = scores[entry.description] = SCORE_DESCRIPTION + round(50 * whole / len(words))
        hits.append(_Hit(entry, score, "description", described))
    return hits


# --- cards --------------------------------------------------------------------------------------


def _rank(hits: list[_Hit], limit: int) -> list[_Hit]:
    """The best `limit` residents, best first (each by its best hit)."""
    best: dict[uuid.UUID, _Hit] = {}
    for hit in hits:
        current = best.get(hit.entry.resident_id)
        if current is None or hit.score > current.score:
            best[hit.entry.resident_id] = hit

    def order(hit: _Hit) -> tuple:
        e = hit.entry
        return (-hit.score, len(e.building), e.building, len(e.unit), e.unit, e.names)

    return heapq.nsmallest(limit, best.values(), key=order)


# One query, only the card's columns (health data never even reaches this process), one row
# per consent.
_CARD_QUERY = (
    select(
        Resident.id,
        Resident.site_id,
        Resident.erased_at,
        Resident.full_name,
        Resident.preferred_name,
        Resident.languages,
        Resident.approach,
        Resident.height_cm,
        Resident.build,
        Resident.hair,
        Resident.eyes,
        Resident.clothing,
        Resident.distinguishing_marks,
        Resident.walking_aid,
        Resident.thumbnail_file,
        Resident.photo_illustration,
        Household.building,
        Household.unit,
        Consent.scopes,
        Consent.review_due,
        Consent.withdrawn_at,
    )
    .join(Household, col(Household.id) == Resident.household_id)
    .join(Consent, col(Consent.resident_id) == Resident.id)
    .where(col(Resident.id).in_(bindparam("ids", expanding=True)))
)


def _cards(session: Session, actor: Actor, hits: list[_Hit], limit: int) -> list[LookupCard]:
    """The best `limit` candidates' cards, checked against the registry and the consents."""
    ranked = _rank(hits, limit)
    if not ranked:
        return []
    ids = [h.entry.resident_id for h in ranked]
    people: dict[uuid.UUID, Any] = {}
    consents: dict[uuid.UUID, list[Any]] = defaultdict(list)
    for row in session.connection().execute(_CARD_QUERY, {"ids": ids}).all():
        people[row.id] = row
        consents[row.id].append(row)
    now = utcnow()
    out = []
    for hit in ranked:
        resident = people.get(hit.entry.resident_id)
        # The index decides who is a candidate; the registry and the consents decide what shows.
        if (
            resident is None
            or resident.erased_at is not None
            or not actor.in_site(resident.site_id)
        ):
            continue
        own = consents[resident.id]
        scopes = live_scopes(own)
        if ConsentScope.lost_person_response not in scopes:
            continue
        state = derive_state(own, now)
        has_photo = bool(resident.thumbnail_file) and ConsentScope.photo in scopes
        out.append(
            LookupCard(
                resident_id=resident.id,
                site_id=resident.site_id,
                preferred_name=resident.preferred_name or resident.full_name,
                unit=f"{resident.building}-{resident.unit}",
                languages=list(resident.languages),
                approach=resident.approach,
                height_cm=resident.height_cm,
                build=resident.build,
                hair=resident.hair,
                eyes=resident.eyes,
                clothing=resident.clothing,
                distinguishing_marks=resident.distinguishing_marks,
                walking_aid=resident.walking_aid,
                photo_url=f"/api/v1/lookup/{resident.id}/photo" if has_photo else None,
                photo_illustration=has_photo and bool(resident.photo_illustration),
                consent_state=state,
                unverified=state == ConsentState.unverified,
                score=hit.score,
                matched=hit.matched,
                matched_terms=list(hit.terms),
            )
        )
    return out


def lookup_photo(
    *, session: Session, actor: Actor, settings: Settings, resident_id: uuid.UUID
) -> bytes:
    """The thumbnail on a guard's card: only of a resident the guard could look up, only with
    the photo consent. Audited like the lookup itself."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        raise NotFound("photo")
    require_site(actor, Permission.guard_ops, resident.site_id, "photo")
    findable = session.exec(
        select(LookupEntry.id).where(LookupEntry.resident_id == resident.id)
    ).first()
    scopes = live_scopes(
        session.exec(select(Consent).where(Consent.resident_id == resident.id)).all()
    )
    if (
        findable is None
        or resident.erased_at is not None
        or ConsentScope.lost_person_response not in scopes
        or ConsentScope.photo not in scopes
        or not resident.thumbnail_file
    ):
        raise NotFound("photo")
    try:
        data = PhotoStore(settings.media_dir).read(resident.thumbnail_file)
    except FileNotFoundError as exc:
        raise NotFound("photo") from exc
    audit_record(
        session,
        actor=actor,
        action="lookup.photo",
        entity="resident",
        entity_id=resident.id,
        resident_id=resident.id,
        site_id=resident.site_id,
    )
    return data
