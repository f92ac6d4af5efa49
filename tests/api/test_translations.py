"""Every string the pages show is translated in every offered language, placeholders intact, and
no catalogue gives two different English words one translation.

The strings are extracted here, with Babel and the project's babel.cfg, from the templates and
the code (`_()` in templates, `gettext(language, "...")` and `N_("...")` in Python): a new
string without a translation in each language fails this test. The catalogues are read as the
files they are (api/translations/<locale>/LC_MESSAGES/*.po), not through gettext, so a missing
entry is not mistaken for one translated as itself ("SMS").
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest
from babel.messages import frontend
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from api.pages.i18n import (
    DEFAULT_LANGUAGE,
    TRANSLATIONS_DIR,
    locale_dir_name,
    negotiate,
    translations_for,
)
from welfare.users.models import UI_LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
# As babel.cfg says: `gettext(language, message)` takes its message second; N_ marks a string.
KEYWORDS = {**DEFAULT_KEYWORDS, "gettext": (2,), "N_": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w*\}")
OFFERED = [language for language in UI_LANGUAGES if language != DEFAULT_LANGUAGE]

# Different English words that may share a translation within one catalogue: true synonyms, or
# words the language does not tell apart. Anything else sharing a translation is a slip (like
# "Residents" and "Households" both 住户). Words that differ only in number, case, articles or a
# final full stop ("Site"/"Sites", "Add a note"/"Add note") count as one word and need no entry.
ALLOWED_SYNONYMS = {
    frozenset(pair)
    for pair in [
        ("Channels", "Reach them by"),
        ("Covers", "What it covers"),
        ("Flat", "Unit"),
        ("Language", "Speaks"),
        ("Languages", "Speaks"),
        ("Language", "Languages"),
        ("Opted out of SMS", "SMS opted out"),
        ("Photo deleted", "Photo removed."),
        ("Places they go", "Places they tend to go"),
        ("State", "Status"),
        ("Time", "When"),
        ("Updated %(time)s", "Updated at %(time)s"),
    ]
}


def _mapping() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    with (ROOT / "babel.cfg").open() as cfg:
        if hasattr(frontend, "parse_mapping_cfg"):  # Babel >= 2.14
            return frontend.parse_mapping_cfg(cfg)
        return frontend.parse_mapping(cfg)  # pragma: no cover


@cache
def ui_messages() -> frozenset[str]:
    method_map, options_map = _mapping()
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT / "api", method_map, options_map, keywords=KEYWORDS
    ):
        if isinstance(message, tuple):
            found.update(m for m in message if m)
        elif message:
            found.add(message)
    return frozenset(found)


@cache
def catalogue_files(language: str) -> dict[str, dict[str, str]]:
    """{file name: {msgid: msgstr}}; fuzzy entries count as untranslated (gettext skips them)."""
    directory = TRANSLATIONS_DIR / locale_dir_name(language) / "LC_MESSAGES"
    files: dict[str, dict[str, str]] = {}
    for po_path in sorted(directory.glob("*.po")):
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale_dir_name(language))
        files[po_path.name] = {
            str(m.id): "" if m.fuzzy else str(m.string or "") for m in catalog if m.id
        }
    return files


def catalogue(language: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for entries in catalogue_files(language).values():
        merged.update(entries)
    return merged


def test_the_extractor_finds_the_page_strings() -> None:
    messages = ui_messages()
    # Guards against an extraction that silently finds nothing and so checks nothing: a
    # template string, a gettext(language, ...) in a page module and an N_() label.
    assert {"Sign in", "Wrong username or password.", "Not found"} <= messages
    assert {"Missing residents", "Households", "Incidents", "Photo the guard took"} <= messages
    assert len(messages) > 700


def test_korean_and_chinese_are_offered() -> None:
    assert set(OFFERED) == {"zh-CN", "ko-KR"}


@pytest.mark.parametrize("language", OFFERED)
def test_every_ui_string_is_translated(language: str) -> None:
    translated = catalogue(language)
    missing = sorted(m for m in ui_messages() if not translated.get(m, "").strip())
    assert missing == [], f"untranslated in {language}: {missing}"


@pytest.mark.parametrize("language", OFFERED)
def test_translations_keep_their_placeholders(language: str) -> None:
    for message, translation in catalogue(language).items():
        if translation:
            assert sorted(PLACEHOLDER.findall(translation)) == sorted(
                PLACEHOLDER.findall(message)
            ), (language, message, translation)


@pytest.mark.parametrize("language", OFFERED)
def test_no_catalogue_entry_is_left_over(language: str) -> None:
    """An entry no page uses any more is a string that was changed: its new form needs one."""
    unused = sorted(set(catalogue(language)) - ui_messages())
    assert unused == [], f"not used by any page ({language}): {unused}"


@pytest.mark.parametrize("language", OFFERED)
def test_a_string_in_two_files_has_one_translation(language: str) -> None:
    """The files of a language are merged into one catalogue: of two different translations of
    one msgid, one would silently never be shown (the console's "Incidents" read 事件数)."""
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for name, entries in catalogue_files(language).items():
        for message, translation in entries.items():
            if message in seen and seen[message][1] != translation:
                clashes.append((message, seen[message], (name, translation)))
            seen.setdefault(message, (name, translation))
    assert clashes == []


def _same_words(message: str) -> str:
    words = re.findall(r"[%(){}\w]+", message.casefold())
    return " ".join(w.removesuffix("s") for w in words if w not in {"a", "an", "the"})


def shared_translations(entries: dict[str, str]) -> list[tuple[str, str, str]]:
    by_translation: dict[str, set[str]] = defaultdict(set)
    for message, translation in entries.items():
        if translation.strip():
            by_translation[translation.strip().rstrip("。.")].add(message)
    slips = []
    for translation, messages in sorted(by_translation.items()):
        ordered = sorted(messages)
        for i, first in enumerate(ordered):
            for second in ordered[i + 1 :]:
                if _same_words(first) == _same_words(second):
                    continue
                if frozenset((first, second)) not in ALLOWED_SYNONYMS:
                    slips.append((translation, first, second))
    return slips


def test_the_synonym_check_catches_the_old_slip() -> None:
    assert shared_translations({"Residents": "住户", "Households": "住户"}) == [
        ("住户", "Households", "Residents")
    ]
    assert shared_translations({"Site": "小区", "Sites": "小区", "Add a note": "添加备注"}) == []
    assert shared_translations({"Add note": "添加备注", "Add a note": "添加备注"}) == []


@pytest.mark.parametrize("language", OFFERED)
def test_two_english_words_never_share_one_translation(language: str) -> None:
    assert shared_translations(catalogue(language)) == []


def test_pages_read_the_catalogues_of_each_language() -> None:
    assert translations_for("zh-CN").gettext("Residents") == "居民"
    assert translations_for("zh-CN").gettext("Households") == "住户"
    assert translations_for("zh-CN").gettext("Incidents") == "事件"
    assert translations_for("ko-KR").gettext("Residents") == "입주민"
    assert translations_for("ko-KR").gettext("Households") == "세대"
    assert translations_for("ko-KR").gettext("Guard") == "경비원"
    assert translations_for("ko-KR").gettext("Duty manager") == "당직 관리자"


def test_unknown_languages_fall_back_to_english() -> None:
    assert translations_for("xx").gettext("Sign in") == "Sign in"
    assert negotiate("zh-HK,zh;q=0.9") == "zh-CN"
    assert negotiate("ko") == "ko-KR"
    assert negotiate("de-DE,fr;q=0.5") == "en"
    assert negotiate(None) == "en"


# The words for the person and for the flat are kept apart in every string, not only in the
# menu: a string about the resident never says household (住户, the console's "Households").
NOT_THE_RESIDENT = {"zh-CN": ("住户",), "ko-KR": ("거주자", "입주자")}


@pytest.mark.parametrize("language", OFFERED)
def test_a_string_about_the_resident_never_calls_them_the_household(language: str) -> None:
    slips = [
        (message, translation)
        for message, translation in catalogue(language).items()
        if re.search(r"\bresidents?\b|\bresident's\b", message, re.IGNORECASE)
        and any(word in translation for word in NOT_THE_RESIDENT[language])
    ]
    assert slips == []


@pytest.mark.parametrize("language", OFFERED)
def test_no_translation_is_left_in_english(language: str) -> None:
    """A msgstr copied from its msgid (or English words left in it) reads as untranslated;
    codes, units and product names (PIN, QR, CSV, cm, RRULE) may stay as they are."""
    keep = {"PIN", "QR", "CSV", "JPEG", "PNG", "WebP", "GPS", "IP", "ID", "URL", "URI", "IT"}
    keep |= {"cm", "RRULE", "RFC", "DTSTART", "UNTIL", "FREQ", "WEEKLY", "BYDAY", "MO", "TH"}
    keep |= {"OpenID", "Connect", "Acme", "English", "https", "welfare", "audit", "verify"}
    keep |= {"acme", "com", "name", "example", "zh", "CN", "KR", "ko", "en", "JSON"}
    keep |= {"true", "false", "WhatsApp", "VAPID"}
    left = []
    for message, translation in catalogue(language).items():
        words = set(re.findall(r"[A-Za-z]{2,}", PLACEHOLDER.sub("", translation)))
        if words - keep:
            left.append((message, translation, sorted(words - keep)))
    assert left == []
