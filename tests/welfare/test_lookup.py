"""The guard lookup service: spellings, typos, scripts, ranking, consent, sites, index upkeep."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from alembic import command
from tests.conftest import SYSTEM
from tests.welfare.test_migrations import empty_database_url  # noqa: F401 (fixture)
from welfare import consents
from welfare.audit.models import AuditEntry
from welfare.audit.service import verify_chain
from welfare.authz import Actor, Role
from welfare.consent.models import Consent, ConsentCreate
from welfare.db import UTCDateTime, alembic_config, make_engine, upgrade_database, utcnow
from welfare.errors import InvalidInput, PermissionDenied
from welfare.lookup import pg_trigram
from welfare.lookup import text as lookup_text
from welfare.lookup.models import LookupCard, LookupEntry, LookupToken, LookupVariant, LookupWord
from welfare.lookup.service import lookup
from welfare.residents import service as residents
from welfare.residents.models import Resident, ResidentUpdate
from welfare.settings import Settings
from welfare.sites import service as sites
from welfare.sites.models import Household, HouseholdUpdate, Site
from welfare.tags import service as tags
from welfare.tags.codes import MistypedCode
from welfare.tags.models import ResidentTag

FOUND = ["registry", "lost_person_response"]


UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def consent(db: Session, resident: Resident, scopes: list[str] = FOUND, **extra: Any) -> Consent:
    record = consents.record_consent(
        session=db,
        actor=SYSTEM,
        resident_id=resident.id,
        data=ConsentCreate(
            given_by_kind="resident",
            given_by_name="the resident",
            method="written",
            scopes=scopes,
            **extra,
        ),
    )
    db.commit()
    return record


def actor_of(role: Role, *at: Site) -> Actor:
    return Actor(user_id=uuid.uuid4(), role=role, site_ids=frozenset(s.id for s in at))


@pytest.fixture
def guard(site: Site) -> Actor:
    return actor_of(Role.guard, site)


@pytest.fixture
def findable(
    db: Session, make_household: Callable[..., Household], make_resident: Callable[..., Resident]
) -> Callable[..., Resident]:
    """A resident with a lost-person consent, at building/unit."""

    def make(building: str = "1", unit: str | None = None, **fields: Any) -> Resident:
        # A random unit of its own: conftest's four-digit one collides now and then.
        household = make_household(building=building, unit=unit or f"u{uuid.uuid4().hex[:8]}")
        resident = make_resident(household=household, **fields)
        consent(db, resident)
        return resident

    return make


def find(db: Session, actor: Actor, **query: Any) -> list[LookupCard]:
    cards = lookup(session=db, actor=actor, **query)
    db.commit()
    return cards


def ids(cards: list[LookupCard]) -> list[uuid.UUID]:
    return [c.resident_id for c in cards]


# --- pure text rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "building", "unit"),
    [
        ("1-1609", "1", "1609"),
        ("1/1609", "1", "1609"),
        ("B1-1609", "1", "1609"),
        ("Building 1 1609", "1", "1609"),
        ("blk 1 1609", "1", "1609"),
        ("Block A, Flat 14", "a", "14"),
        ("1609", None, "1609"),
        ("flat 1609", None, "1609"),
    ],
)
def test_unit_spellings_parse_to_building_and_flat(
    typed: str, building: str | None, unit: str
) -> None:
    assert lookup_text.parse_unit(typed)[0] == lookup_text.UnitQuery(unit, building)


def test_names_are_not_read_as_flats() -> None:
    assert lookup_text.parse_unit("Wang Jianguo") == []
    assert lookup_text.parse_unit("grey coat") == []


def test_folding_drops_case_and_accents_but_keeps_chinese_and_korean() -> None:
    assert lookup_text.fold("  ZOË  O'Brien ") == "zoe o brien"
    assert lookup_text.fold("王建国") == "王建国"
    assert lookup_text.fold("박순자") == "박순자"


def test_edit_distance_counts_a_transposition_as_one() -> None:
    assert lookup_text.edit_distance("wnag", "wang") == 1
    assert lookup_text.edit_distance("jiangou", "jianguo") == 1
    assert lookup_text.edit_distance("jangou", "jianguo") == 2
    assert lookup_text.edit_distance("smith", "jones") > 2


# --- matching -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed", ["1-1609", "1/1609", "B1-1609", "Building 1 1609", "blk 1 1609", "b1 - 1609"]
)
def test_each_unit_spelling_finds_that_flat_only(
    db: Session, guard: Actor, findable: Callable[..., Resident], typed: str
) -> None:
    wang = findable("1", "1609")
    findable("2", "1609")
    findable("1", "1610")
    cards = find(db, guard, q=typed)
    assert ids(cards) == [wang.id]
    assert cards[0].unit == "1-1609"
    assert cards[0].matched == "unit"


def test_a_bare_flat_number_finds_it_in_every_building(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    first, second = findable("1", "1609"), findable("2", "1609")
    findable("1", "1610")
    assert ids(find(db, guard, q="1609")) == [first.id, second.id]


@pytest.mark.parametrize(
    "typed", ["Wang Jianguo", "wang jianguo", "WANG JIANGUO", "Jianguo Wang", "jianguo", "Mr. Wang"]
)
def test_name_and_preferred_name_match_whatever_the_case(
    db: Session, guard: Actor, findable: Callable[..., Resident], typed: str
) -> None:
    wang = findable()
    findable(full_name="Park Soon-ja", preferred_name="Mrs. Park")
    assert ids(find(db, guard, q=typed)) == [wang.id]


@pytest.mark.parametrize("typed", ["Wnag Jianguo", "Jiangou", "wang jiangou", "Wang Jangguo"])
def test_names_with_one_or_two_typos_still_match(
    db: Session, guard: Actor, findable: Callable[..., Resident], typed: str
) -> None:
    wang = findable()
    findable(full_name="Park Soon-ja", preferred_name="Mrs. Park")
    cards = find(db, guard, q=typed)
    assert ids(cards) == [wang.id]
    assert cards[0].matched == "name"


def test_too_many_typos_match_nothing(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    findable()
    assert find(db, guard, q="Wxyz Jqqqquo") == []


def test_accents_are_ignored_both_ways(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    zoe = findable(full_name="Zoë Faure", preferred_name=None)
    jose = findable(full_name="Jose Alvarez", preferred_name=None)
    assert ids(find(db, guard, q="zoe faure")) == [zoe.id]
    assert ids(find(db, guard, q="José Álvarez")) == [jose.id]
    assert find(db, guard, q="zoe faure")[0].preferred_name == "Zoë Faure"


@pytest.mark.parametrize(
    ("full", "typed"),
    [
        ("王建国", "王建国"),
        ("王建国", "建国"),
        ("박순자", "박순자"),
        ("박순자", "순자"),
        ("박순자", "박"),
    ],
)
def test_chinese_and_korean_names_match_whole_or_in_part(
    db: Session, guard: Actor, findable: Callable[..., Resident], full: str, typed: str
) -> None:
    resident = findable(full_name=full, preferred_name=None)
    findable(full_name="Li Fang", preferred_name=None)
    if typed == "박":  # one syllable: only as a whole word; no one is called just 박
        assert find(db, guard, q=typed) == []
        return
    assert ids(find(db, guard, q=typed)) == [resident.id]


def test_a_short_word_common_to_many_names_still_narrows_a_typo_search(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    """ "ng" finds every name word ending in -ng, far more entries than "siu" does: on PostgreSQL
    it is checked on the rows the rarer words find rather than used as an index condition, and
    the result is the same."""
    ng = findable(full_name="Ng Siu-ming", preferred_name=None)
    fang = findable(full_name="Fang Siu-ming", preferred_name=None)
    for surname in ("Wang", "Wong", "Zhang", "Cheung", "Leung", "Hong", "Yeung"):
        findable(full_name=f"{surname} Mei", preferred_name=None)
    cards = find(db, guard, q="Ng Siu-minng")
    assert set(ids(cards)) == {ng.id, fang.id}
    assert {c.matched for c in cards} == {"name"}
    assert ids(find(db, guard, q="Ng Mei siu")) == []


def test_postgres_lookup_indexes_insert_straight_into_the_tree(db: Session) -> None:
    """A GIN pending list is read whole by every search: the lookup's GIN indexes keep none."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("GIN indexes are PostgreSQL's")
    options = dict(
        db.connection()
        .execute(
            sa.text(
                "SELECT relname, reloptions FROM pg_class WHERE relname IN "
                "('ix_lookup_token_trgm', 'ix_lookup_entry_names_words', "
                "'ix_lookup_entry_description_words') AND pg_table_is_visible(oid)"
            )
        )
        .all()
    )
    assert len(options) == 3
    assert all("fastupdate=off" in (o or []) for o in options.values())


def test_postgres_word_statements_are_planned_with_their_words(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    """psycopg prepares a statement run five times, and PostgreSQL may then keep a generic plan
    that cannot see the words (it walked the whole vocabulary). The two statements whose plan
    depends on them are never prepared, however often they run."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    grey = findable(clothing="Long grey coat", distinguishing_marks="walking stick")
    for _ in range(8):
        assert ids(find(db, guard, q="grey coat")) == [grey.id]
        assert ids(find(db, guard, q="walking stick")) == [grey.id]
    prepared = db.connection().execute(sa.text("SELECT statement FROM pg_prepared_statements"))
    statements = [row[0] for row in prepared]
    assert any("audit_entry" in s for s in statements)  # psycopg does prepare the others
    assert not [s for s in statements if "FROM lookup_token" in s or "&&" in s]


@pytest.mark.parametrize("window_pages", [0, 1000])
def test_postgres_common_words_give_the_same_cards_from_the_window_or_the_index(
    db: Session,
    guard: Actor,
    findable: Callable[..., Resident],
    monkeypatch: pytest.MonkeyPatch,
    window_pages: int,
) -> None:
    """Words common enough (`DENSE`) are looked for by LIKE in the table's first pages before
    the GIN index; with every group counted as common, an empty window (the index alone) and
    one holding the whole table (LIKE alone) give the cards the vocabulary's words give."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("the window is PostgreSQL's word match")
    monkeypatch.setattr(pg_trigram, "DENSE", 1)
    monkeypatch.setattr(pg_trigram, "WINDOW_PAGES", window_pages)
    monkeypatch.setattr(pg_trigram, "WINDOW_COLUMNS", pg_trigram.TOKEN_FIELDS)
    grey = findable(full_name="Li Fang", clothing="Long grey coat, brown shoes", hair="white")
    rain = findable(full_name="Ho Wing", clothing="grey raincoat", distinguishing_marks="limp")
    ng = findable(full_name="Ng Siu-ming", preferred_name=None)
    fang = findable(full_name="Fang Siu-ming", preferred_name=None)
    wang = findable(full_name="Wang Mei", preferred_name=None, aliases=["Ah Mei"])
    assert set(ids(find(db, guard, q="grey coat"))) == {grey.id, rain.id}
    assert ids(find(db, guard, q="grey coat"))[0] == grey.id  # a whole word ranks first
    assert ids(find(db, guard, q="white grey")) == [grey.id]
    assert find(db, guard, q="white hair grey") == []
    assert ids(find(db, guard, q="limp")) == [rain.id]
    assert set(ids(find(db, guard, q="Ng Siu-minng"))) == {ng.id, fang.id}
    assert ids(find(db, guard, q="ho")) == [rain.id]  # a short word: at a word's edge (not "shoes")
    assert find(db, guard, q="Ng Mei siu") == []
    assert ids(find(db, guard, q="ah mei")) == [wang.id]


def test_an_alias_finds_the_resident(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang = findable(aliases=["Ah Kwok", "王建国"])
    assert ids(find(db, guard, q="ah kwok")) == [wang.id]
    assert ids(find(db, guard, q="王建国")) == [wang.id]


def test_description_words_match_clothing_marks_and_hair(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    grey = findable(clothing="Long grey coat, brown shoes", hair="white, short")
    stick = findable(full_name="Li Fang", distinguishing_marks="Walks with a walking stick")
    assert ids(find(db, guard, q="grey coat")) == [grey.id]
    assert ids(find(db, guard, q="walking stick")) == [stick.id]
    assert ids(find(db, guard, q="white hair grey")) == []  # every word must be there
    assert ids(find(db, guard, q="white grey")) == [grey.id]
    assert find(db, guard, q="grey coat")[0].matched == "description"
    assert find(db, guard, q="red scarf") == []


def test_exact_names_rank_above_partial_above_typos_above_descriptions(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    description = findable(full_name="Li Fang", clothing="T-shirt saying Wang Jianguo")
    fuzzy = findable(full_name="Wang Jiangou")
    partial = findable(full_name="Wang Jianguozhen")
    exact = findable(full_name="Wang Jianguo", preferred_name=None)
    cards = find(db, guard, q="Wang Jianguo")
    assert ids(cards) == [exact.id, partial.id, fuzzy.id, description.id]
    assert [c.matched for c in cards] == ["name", "name", "name", "description"]
    assert [c.score for c in cards] == sorted((c.score for c in cards), reverse=True)


def test_a_flat_with_its_building_ranks_above_the_same_number_elsewhere(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    block = findable("A", "14")
    flat = findable("2", "A14")
    cards = find(db, guard, q="A14")
    assert ids(cards) == [block.id, flat.id]
    assert cards[0].score > cards[1].score


def test_limit_caps_the_cards(db: Session, guard: Actor, findable: Callable[..., Resident]) -> None:
    for building in range(1, 5):
        findable(str(building), "1609")
    assert len(find(db, guard, q="1609", limit=3)) == 3


# --- tags ---------------------------------------------------------------------------------------


def _tag(db: Session, resident: Resident, revoked: bool = False) -> str:
    code = secrets.token_urlsafe(16)
    db.add(
        ResidentTag(resident_id=resident.id, code=code, revoked_at=utcnow() if revoked else None)
    )
    db.commit()
    return code


def test_a_live_tag_finds_its_resident_and_a_revoked_one_nothing(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang, park = findable(), findable(full_name="Park Soon-ja")
    live, revoked = _tag(db, wang), _tag(db, park, revoked=True)
    cards = find(db, guard, tag=live)
    assert ids(cards) == [wang.id]
    assert cards[0].matched == "tag"
    assert ids(find(db, guard, q=live)) == [wang.id]  # a code typed into the search box
    assert find(db, guard, tag=revoked) == []
    assert find(db, guard, tag=live.lower() + "x") == []


def _typed_loosely(code: str) -> str:
    """A printed code as a guard types it: lower case, spaces for dashes, O for 0, L for 1."""
    return code.lower().replace("-", " ").replace("0", "O").replace("1", "l")


def test_a_printed_code_typed_in_any_case_with_spaces_or_dashes_finds_its_resident(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang, park = findable(), findable(full_name="Park Soon-ja")
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=wang.id).code
    tags.issue_tag(session=db, actor=SYSTEM, resident_id=park.id)
    db.commit()
    canonical = code.replace("-", "")
    for typed in (code, code.lower(), canonical, f" {_typed_loosely(code)} ", "-".join(canonical)):
        cards = find(db, guard, tag=typed)
        assert ids(cards) == [wang.id], typed
        assert cards[0].matched == "tag"
    assert ids(find(db, guard, q=_typed_loosely(code))) == [wang.id]  # in the search box too


def test_an_old_token_and_a_printed_code_both_resolve_side_by_side(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    old, new = findable(), findable(full_name="Park Soon-ja")
    token = _tag(db, old)  # a tag issued before printed codes: a URL-safe token
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=new.id).code
    db.commit()
    assert ids(find(db, guard, tag=token)) == [old.id]
    assert ids(find(db, guard, tag=code.lower())) == [new.id]
    assert find(db, guard, tag=token.swapcase()) == []  # old tokens stay exact


def test_a_code_with_a_wrong_check_character_says_check_the_code(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang = findable()
    code = tags.issue_tag(session=db, actor=SYSTEM, resident_id=wang.id).code
    db.commit()
    canonical = code.replace("-", "")
    swapped = next(
        canonical[:i] + canonical[i + 1] + canonical[i] + canonical[i + 2 :]
        for i in range(len(canonical) - 1)
        if canonical[i] != canonical[i + 1]
    )
    last = canonical[-1]
    wrong = canonical[:-1] + ("2" if last != "2" else "3")
    for typed in (swapped, wrong.lower()):
        with pytest.raises(MistypedCode) as caught:
            find(db, guard, tag=typed)
        assert caught.value.status_hint == 422 and "check the code" in caught.value.message
    # In the search box a mistyped code is just words: no error, nobody found by it.
    assert find(db, guard, q=wrong) == []


# --- consent ------------------------------------------------------------------------------------


def test_without_consent_a_resident_is_never_found(
    db: Session, guard: Actor, make_resident: Callable[..., Resident]
) -> None:
    resident = make_resident()
    _tag(db, resident)
    assert find(db, guard, q="Wang Jianguo") == []
    assert db.exec(select(LookupEntry)).all() == []


def test_consent_without_the_lost_person_scope_is_not_enough(
    db: Session, guard: Actor, make_resident: Callable[..., Resident]
) -> None:
    consent(db, make_resident(), scopes=["registry", "welfare_visits", "photo"])
    assert find(db, guard, q="Wang Jianguo") == []


def test_an_overdue_review_shows_the_resident_flagged_unverified(
    db: Session, guard: Actor, make_resident: Callable[..., Resident]
) -> None:
    resident = make_resident()
    now = utcnow()
    consent(
        db,
        resident,
        given_at=now - dt.timedelta(days=400),
        review_due=now - dt.timedelta(days=35),
    )
    [card] = find(db, guard, q="Wang Jianguo")
    assert card.resident_id == resident.id
    assert card.consent_state == "unverified"
    assert card.unverified is True


def test_an_active_consent_is_not_flagged(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    findable()
    [card] = find(db, guard, q="Wang Jianguo")
    assert (card.consent_state, card.unverified) == ("active", False)


def test_withdrawing_the_lost_person_consent_hides_the_resident(
    db: Session, settings: Settings, guard: Actor, make_resident: Callable[..., Resident]
) -> None:
    resident = make_resident()
    consent(db, resident, scopes=["registry"])
    finding = consent(db, resident, scopes=["lost_person_response"])
    assert len(find(db, guard, q="Wang Jianguo")) == 1
    consents.withdraw_consent(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, consent_id=finding.id
    )
    db.commit()
    assert find(db, guard, q="Wang Jianguo") == []
    assert db.get(Resident, resident.id).full_name == "Wang Jianguo"  # registry consent holds


def test_erasure_removes_the_entry_and_the_name_words(
    db: Session, settings: Settings, guard: Actor, findable: Callable[..., Resident]
) -> None:
    resident = findable(full_name="Quixotically Unforgettable", aliases=["Zanzibarian"])
    findable(full_name="Li Fang")
    assert ids(find(db, guard, q="Quixoticaly")) == [resident.id]
    [live] = consents.consents_of(db, resident.id)
    consents.withdraw_consent(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, consent_id=live.id
    )
    db.commit()
    assert find(db, guard, q="Quixotically Unforgettable") == []
    entries = db.exec(select(LookupEntry.resident_id)).all()
    assert resident.id not in entries and len(entries) == 1
    words = set(db.exec(select(LookupWord.word)).all())
    variants = set(db.exec(select(LookupVariant.word)).all())
    assert not {"quixotically", "unforgettable", "zanzibarian"} & (words | variants)
    tokens = set(db.exec(select(LookupToken.token)).all())
    assert not {"quixotically", "unforgettable", "zanzibarian"} & tokens
    assert {"li", "fang"} <= tokens


def test_erasure_leaves_no_folded_copy_in_the_sqlite_files(
    db: Session, settings: Settings, findable: Callable[..., Resident]
) -> None:
    if not settings.is_sqlite:
        pytest.skip("the on-disk check is about SQLite's own files")
    resident = findable("1", "100", full_name="Quixotically Unforgettable")
    for n in range(30):  # other entries, so the full-text index has more than one segment
        findable("2", str(200 + n), full_name=f"Other Person{n}")
    path = Path(settings.database_url.removeprefix("sqlite:///"))

    def on_disk() -> bytes:
        return b"".join(
            Path(f"{path}{s}").read_bytes()
            for s in ("", "-wal", "-journal")
            if Path(f"{path}{s}").exists()
        )

    marker = b"quixotically unforgettable"
    assert marker in on_disk()  # the check below can fail
    assert b"xotica" in on_disk()
    [live] = consents.consents_of(db, resident.id)
    consents.withdraw_consent(
        session=db, actor=SYSTEM, settings=settings, resident_id=resident.id, consent_id=live.id
    )
    db.commit()
    db.close()
    data = on_disk()
    assert marker not in data
    # The trigram index keeps terms like 'xot', 'uix': after the erasure no rare one is left.
    for trigram in (b"xot", b"uix", b"ixo"):
        assert trigram not in data, trigram


# --- sites and roles ----------------------------------------------------------------------------


def test_a_guard_of_another_site_finds_nothing_by_name_unit_or_tag(
    db: Session, make_site: Callable[..., Site], findable: Callable[..., Resident]
) -> None:
    wang = findable("1", "1609")
    code = _tag(db, wang)
    elsewhere = actor_of(Role.guard, make_site(name="Elsewhere Court"))
    for query in ({"q": "Wang Jianguo"}, {"q": "1-1609"}, {"q": "Wnag"}, {"tag": code}):
        assert find(db, elsewhere, **query) == []


def test_staff_managers_and_the_system_may_look_up(
    db: Session, site: Site, findable: Callable[..., Resident]
) -> None:
    wang = findable()
    for actor in (actor_of(Role.staff, site), actor_of(Role.manager, site), SYSTEM):
        assert ids(find(db, actor, q="Wang Jianguo")) == [wang.id]


def test_an_admin_outside_the_site_sees_nothing(
    db: Session, make_site: Callable[..., Site], findable: Callable[..., Resident]
) -> None:
    findable()
    assert find(db, actor_of(Role.admin, make_site(name="Head Office")), q="Wang Jianguo") == []


@pytest.mark.parametrize(
    "query",
    [{}, {"q": "1609", "tag": "abc"}, {"q": "   "}, {"q": "x" * 201}, {"tag": " "}],
)
def test_bad_queries_are_refused(db: Session, guard: Actor, query: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        lookup(session=db, actor=guard, **query)


def test_an_actor_without_guard_operations_is_refused(db: Session) -> None:
    stranger = Actor(user_id=uuid.uuid4(), role=Role.guard, site_ids=frozenset())
    object.__setattr__(stranger, "role", "nobody")
    with pytest.raises((PermissionDenied, KeyError)):
        lookup(session=db, actor=stranger, q="1609")


# --- audit --------------------------------------------------------------------------------------


def test_every_lookup_is_audited_with_the_kind_and_results_but_not_the_query(
    db: Session, site: Site, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang = findable("1", "1609")
    code = _tag(db, wang)
    for query, kind in (
        ({"q": "Wang Jianguo"}, "name"),
        ({"q": "1-1609"}, "unit"),
        ({"q": "grey coat"}, "name"),
        ({"tag": code}, "tag"),
    ):
        find(db, guard, **query)
        entry = db.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc())).first()
        assert entry is not None
        assert entry.action == ("lookup.tag" if "tag" in query else "lookup.search")
        assert entry.actor_id == guard.user_id
        assert entry.detail["kind"] == kind
        # Where a query could leak: the detail and purpose (ids masked: a random UUID may
        # contain "1609").
        stored = UUID_PATTERN.sub("<id>", json.dumps([entry.detail, entry.purpose]))
        assert next(iter(query.values())) not in stored
        assert "Wang" not in stored and "1609" not in stored
    hit = db.exec(select(AuditEntry).where(AuditEntry.action == "lookup.tag")).one()
    assert hit.detail == {"kind": "tag", "rank": 1, "shown": 1}
    assert hit.resident_id == wang.id and hit.site_id == site.id


def test_a_lookup_showing_several_residents_leaves_one_entry_per_resident(
    db: Session, site: Site, guard: Actor, findable: Callable[..., Resident]
) -> None:
    first = findable(full_name="Chan Tai-man")
    second = findable(full_name="Chan Siu-ling")
    findable(full_name="Li Fang")
    before = db.exec(select(func.max(AuditEntry.id))).one() or 0
    cards = find(db, guard, q="Chan")
    assert set(ids(cards)) == {first.id, second.id}
    entries = db.exec(
        select(AuditEntry).where(col(AuditEntry.id) > before).order_by(col(AuditEntry.id))
    ).all()
    assert [e.resident_id for e in entries] == ids(cards)  # in the order shown
    assert [e.detail for e in entries] == [
        {"kind": "name", "rank": 1, "shown": 2},
        {"kind": "name", "rank": 2, "shown": 2},
    ]
    assert {e.site_id for e in entries} == {site.id}
    assert len({e.entity_id for e in entries}) == 1 and entries[0].entity_id
    assert len({e.at for e in entries}) == 1
    assert verify_chain(db).ok
    # A lookup that shows nobody still leaves one entry, about nobody.
    assert find(db, guard, q="Nobody Here") == []
    last = db.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc())).first()
    assert last is not None and last.resident_id is None
    assert last.detail == {"kind": "name", "shown": 0} and last.entity_id not in {
        e.entity_id for e in entries
    }


def test_description_kind_is_audited_when_a_description_matched(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    findable(clothing="grey coat")
    find(db, guard, q="grey coat")
    entry = db.exec(select(AuditEntry).order_by(col(AuditEntry.id).desc())).first()
    assert entry is not None and entry.detail["kind"] == "description"


# --- the index follows the registry -------------------------------------------------------------


def test_renaming_a_resident_moves_the_index(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang = findable()
    residents.update_resident(
        session=db,
        actor=SYSTEM,
        resident_id=wang.id,
        data=ResidentUpdate(full_name="Chan Tai-man", preferred_name="Mr. Chan"),
    )
    db.commit()
    assert find(db, guard, q="Wang Jianguo") == []
    assert ids(find(db, guard, q="Chan Tai-man")) == [wang.id]
    assert "jianguo" not in set(db.exec(select(LookupWord.word)).all())
    names = set(db.exec(select(LookupToken.token).where(LookupToken.field == "names")).all())
    assert names == {"chan", "tai", "man", "mr"}


def test_renumbering_a_household_moves_its_residents(
    db: Session, guard: Actor, findable: Callable[..., Resident]
) -> None:
    wang = findable("1", "1609")
    assert wang.household_id is not None
    sites.update_household(
        session=db,
        actor=SYSTEM,
        household_id=wang.household_id,
        data=HouseholdUpdate(building="3", unit="0802"),
    )
    db.commit()
    assert find(db, guard, q="1-1609") == []
    [card] = find(db, guard, q="3-0802")
    assert (card.resident_id, card.unit) == (wang.id, "3-0802")


def test_a_word_shared_by_two_residents_stays_until_both_are_gone(
    db: Session, settings: Settings, guard: Actor, findable: Callable[..., Resident]
) -> None:
    first, second = findable(full_name="Wang Jianguo"), findable(full_name="Wang Meiling")
    assert db.exec(select(LookupWord.refs).where(LookupWord.word == "wang")).one() == 2
    [live] = consents.consents_of(db, first.id)
    consents.withdraw_consent(
        session=db, actor=SYSTEM, settings=settings, resident_id=first.id, consent_id=live.id
    )
    db.commit()
    assert db.exec(select(LookupWord.refs).where(LookupWord.word == "wang")).one() == 1
    assert ids(find(db, guard, q="Wnag")) == [second.id]
    tokens = dict(
        db.exec(  # type: ignore[arg-type]
            select(LookupToken.token, LookupToken.refs).where(LookupToken.field == "names")
        ).all()
    )
    assert tokens == {"wang": 1, "meiling": 1, "mr": 1}  # "jianguo" went with its last holder


def test_index_rebuild_gives_the_same_entries(
    db: Session, findable: Callable[..., Resident]
) -> None:
    from welfare.lookup import index

    findable()
    findable(full_name="Zoë Faure", clothing="grey coat")
    before = sorted(tuple(r) for r in db.exec(select(LookupEntry.resident_id, LookupEntry.names)))
    words = sorted(tuple(r) for r in db.exec(select(LookupWord.word, LookupWord.refs)))
    vocabulary = select(LookupToken.field, LookupToken.token, LookupToken.refs)
    tokens = sorted(tuple(r) for r in db.exec(vocabulary))
    assert ("description", "coat") in [(f, t) for f, t, _ in tokens]
    assert index.rebuild(db) == 2
    db.commit()
    assert (
        sorted(tuple(r) for r in db.exec(select(LookupEntry.resident_id, LookupEntry.names)))
        == before
    )
    assert sorted(tuple(r) for r in db.exec(select(LookupWord.word, LookupWord.refs))) == words
    assert sorted(tuple(r) for r in db.exec(vocabulary)) == tokens


# --- the migration ------------------------------------------------------------------------------


def test_migration_backfills_findable_residents_and_downgrades_cleanly(
    empty_database_url: str,  # noqa: F811
) -> None:
    url = empty_database_url
    config = alembic_config(url)
    command.upgrade(config, "0003")
    engine = make_engine(url)
    now = utcnow()
    site_id, kept, hidden = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # The models' tables for their UUID and JSON handling; only columns 0003 already has are set.
    tables: dict[str, Any] = {
        # Only the columns 0003 has: the model's later columns carry defaults of their own.
        "site": sa.table(
            "site",
            sa.column("id", sa.Uuid()),
            sa.column("name", sa.String()),
            sa.column("timezone", sa.String()),
            sa.column("phone_region", sa.String()),
            sa.column("created_at", UTCDateTime()),
        ),
        "household": Household.__table__,
        "resident": Resident.__table__,
        "consent": Consent.__table__,
    }
    with engine.begin() as connection:
        connection.execute(
            tables["site"].insert(),
            {
                "id": site_id,
                "name": "S",
                "timezone": "UTC",
                "phone_region": "GB",
                "created_at": now,
            },
        )
        for resident_id, unit, name in ((kept, "1609", "Zoë Wang"), (hidden, "1610", "Li Fang")):
            household_id = uuid.uuid4()
            connection.execute(
                tables["household"].insert(),
                {
                    "id": household_id,
                    "site_id": site_id,
                    "building": "Block 1",
                    "unit": unit,
                    "created_at": now,
                },
            )
            connection.execute(
                tables["resident"].insert(),
                {
                    "id": resident_id,
                    "site_id": site_id,
                    "household_id": household_id,
                    "full_name": name,
                    "aliases": ["Ah Zoe"],
                    "languages": [],
                    "places": [],
                    "wandering_history": [],
                    "sex": "female",
                    "risk_level": "medium",
                    "clothing": "grey coat",
                    "created_at": now,
                    "updated_at": now,
                },
            )
        connection.execute(
            tables["consent"].insert(),
            {
                "id": uuid.uuid4(),
                "resident_id": kept,
                "given_by_kind": "resident",
                "method": "written",
                "scopes": ["registry", "lost_person_response"],
                "given_at": now,
                "review_due": now + dt.timedelta(days=30),
                "created_at": now,
            },
        )
    command.upgrade(config, "0004")
    with Session(engine) as session:
        entries = session.exec(select(LookupEntry)).all()
        assert [(e.resident_id, e.building, e.unit) for e in entries] == [(kept, "1", "1609")]
        assert entries[0].names == "|zoe wang|ah zoe|"
        assert entries[0].description == "|grey coat|"
        assert set(session.exec(select(LookupWord.word)).all()) == {"wang"}
    command.upgrade(config, "0009")  # the word vocabulary, backfilled from the entries
    with Session(engine) as session:
        tokens = session.exec(select(LookupToken.field, LookupToken.token, LookupToken.refs))
        assert set(tokens.all()) == {
            ("names", "zoe", 1),  # in two of the entry's names, but one entry: counted once
            ("names", "wang", 1),
            ("names", "ah", 1),
            ("description", "grey", 1),
            ("description", "coat", 1),
        }
    command.upgrade(config, "head")  # the cards read columns of later revisions
    with Session(engine) as session:
        cards = lookup(session=session, actor=SYSTEM, q="B1-1609")
        assert [c.resident_id for c in cards] == [kept]
        assert [c.resident_id for c in lookup(session=session, actor=SYSTEM, q="Wnag")] == [kept]
    command.downgrade(config, "0003")
    names = set(sa.inspect(engine).get_table_names())
    assert not {n for n in names if n.startswith("lookup")}
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            triggers = connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ).all()
        assert triggers == []
    else:
        with engine.connect() as connection:
            left = connection.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_lookup%%'"
                " AND schemaname = current_schema()"
            ).all()
        assert left == []
    engine.dispose()
    upgrade_database(url)  # and up again
