"""Pure text helpers for the guard lookup: folding, unit spellings, typo candidates.

Everything here is deterministic and free of I/O, so the index writer and the query side fold
text the same way (and the tests can pin each rule on its own).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import combinations

from welfare.tags import codes

NAME_SEPARATOR = "|"
# Words that say "this is a flat number" rather than being part of the building's name.
_UNIT_WORDS = {"flat", "unit", "rm", "room", "apt", "apartment", "no", "number"}
# Prefixes people put before a building's name or number: "Building 1", "Blk 1", "B1".
_BUILDING_WORDS = ("building", "bldg", "block", "blk", "tower", "twr", "house", "bld", "tw")
_UNIT_TOKEN = re.compile(r"^[0-9]+[a-z]?$")
_GLUED_BUILDING_UNIT = re.compile(r"^([a-z])([0-9]+[a-z]?)$")
_TAG_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def fold(text: str | None) -> str:
    """Case- and accent-insensitive form: 'Zoë  O'Brien' -> 'zoe o brien'. CJK and Hangul keep
    their characters (NFKC recomposes the Hangul syllables NFKD took apart)."""
    if not text:
        return ""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    composed = unicodedata.normalize("NFKC", stripped).casefold()
    return " ".join("".join(c if c.isalnum() else " " for c in composed).split())


def names_field(names: list[str | None]) -> str:
    """'|wang jianguo|mr wang|王建国|': every name folded, bounded so a whole name or a word's
    start and end can be matched as a substring."""
    folded = list(dict.fromkeys(f for f in (fold(n) for n in names) if f))
    if not folded:
        return ""
    return NAME_SEPARATOR + NAME_SEPARATOR.join(folded) + NAME_SEPARATOR


def split_names(field: str) -> list[str]:
    return [n for n in field.split(NAME_SEPARATOR) if n]


def field_tokens(field: str) -> set[str]:
    """The words of a names or description field: what PostgreSQL's word index holds for the
    entry (`string_to_array(translate(field, '|', ' '), ' ')`, without the empty strings)."""
    return set(field.replace(NAME_SEPARATOR, " ").split())


def description_field(parts: list[str | None]) -> str:
    folded = [f for f in (fold(p) for p in parts) if f]
    return (NAME_SEPARATOR + NAME_SEPARATOR.join(folded) + NAME_SEPARATOR) if folded else ""


def building_key(building: str | None) -> str:
    """'Building 1', 'Blk 1', 'B1', '1' -> '1'; 'Block A' -> 'a'."""
    key = fold(building).replace(" ", "")
    for word in _BUILDING_WORDS:
        if key.startswith(word) and len(key) > len(word):
            return key[len(word) :]
    if len(key) > 1 and key[0] == "b" and key[1:].isdigit():
        return key[1:]
    return key


def unit_key(unit: str | None) -> str:
    return fold(unit).replace(" ", "")


@dataclass(frozen=True)
class UnitQuery:
    unit: str
    building: str | None  # None: every building's flat with this number


def parse_unit(query: str) -> list[UnitQuery]:
    """The readings of a query as a flat: '1-1609', '1/1609', 'B1-1609', 'Building 1 1609',
    'blk 1 1609' -> building 1, flat 1609; '1609' -> flat 1609 in any building. Empty when the
    query has no flat number at its end (then it is a name or a description)."""
    tokens = fold(query).split()
    if not tokens:
        return []
    last = tokens[-1]
    if not _UNIT_TOKEN.match(last):
        glued = _GLUED_BUILDING_UNIT.match(last)
        if glued and len(tokens) == 1:  # 'A14': block A, flat 14 (or a flat called 'a14')
            return [UnitQuery(glued.group(2), glued.group(1)), UnitQuery(last, None)]
        return []
    rest = [t for t in tokens[:-1] if t not in _UNIT_WORDS]
    if not rest:
        return [UnitQuery(last, None)]
    building = building_key("".join(rest))
    return [UnitQuery(last, building)] if building else [UnitQuery(last, None)]


def looks_like_tag(query: str) -> bool:
    """A printed tag code however typed (`K7QM2 xhd9p rt4wz`, its check character right), or a
    URL-safe random token (tags issued before the printed codes: 22 characters), never spaced
    words. A long single word also passes; the tag lookup is one index seek and falls through
    when it misses."""
    return bool(_TAG_SHAPE.match(query.strip())) or codes.read_typed(query).printed is not None


# --- typo tolerance -------------------------------------------------------------------------------


def typo_budget(word: str) -> int:
    """How many edits a word may carry and still match: none below 4 letters, one up to 5,
    two from 6. Only Latin-script words: a typo in a CJK name is a different name."""
    if not (word.isascii() and word.isalpha()) or len(word) < 4:
        return 0
    return 1 if len(word) <= 5 else 2


def deletes(word: str, depth: int) -> set[str]:
    """The word with up to `depth` letters left out (itself included): the symmetric-delete
    keys. 'wnag' and 'wang' share 'wag', so a transposition is found by exact key lookup."""
    out = {word}
    for k in range(1, min(depth, len(word) - 1) + 1):
        for drop in combinations(range(len(word)), k):
            out.add("".join(c for i, c in enumerate(word) if i not in drop))
    return out


def edit_distance(a: str, b: str, cap: int = 3) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, stopping early above `cap`."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > cap:
        return cap + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > cap:
            return cap + 1
        previous2, previous = previous, current
    return previous[-1]


def fuzzy_words(names: str) -> set[str]:
    """The words of a names field that get typo keys."""
    return {w for n in split_names(names) for w in n.split() if typo_budget(w)}
