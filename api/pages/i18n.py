"""UI translations: gettext catalogues (.po) under api/translations, read with Babel at start.

Each locale directory may hold several .po files (one per area of the UI); they are merged into
one catalogue. Compiling in memory means no binary .mo file can go stale in the repository.
"""

from __future__ import annotations

from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from welfare.users.models import UI_LANGUAGES

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LANGUAGE = "en"


def locale_dir_name(language: str) -> str:
    """BCP 47 ("zh-CN") to the gettext directory name ("zh_CN")."""
    return language.replace("-", "_")


@cache
def translations_for(language: str) -> NullTranslations:
    if language not in UI_LANGUAGES:
        language = DEFAULT_LANGUAGE
    directory = TRANSLATIONS_DIR / locale_dir_name(language) / "LC_MESSAGES"
    merged: NullTranslations = NullTranslations()
    for po_path in sorted(directory.glob("*.po")) if directory.is_dir() else []:
        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=locale_dir_name(language))
        buffer = BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        part = Translations(fp=buffer)
        if isinstance(merged, Translations):
            merged.merge(part)
        else:
            merged = part
    return merged


def N_(message: str) -> str:
    """Marks a string for extraction where it is defined; it is translated where it is shown."""
    return message


def gettext(language: str, message: str) -> str:
    return translations_for(language).gettext(message)


def ui_language(value: str | None) -> str | None:
    """The offered UI language a typed or linked code means: "ko-KR", "ko-kr" or just "ko";
    None for anything else (the caller falls back as it would without a choice)."""
    if not value or len(value) > 20:
        return None
    wanted = value.strip().lower()
    for code in UI_LANGUAGES:
        if wanted in (code.lower(), code.lower().split("-")[0]):
            return code
    return None


def negotiate(accept_language: str | None) -> str:
    """The best UI language for an Accept-Language header; English when nothing matches.

    Each preference in order of weight matches exactly or by its language ("zh-TW" reads
    zh-CN rather than falling through to a lower-weighted English).
    """
    weighted: list[tuple[float, str]] = []
    for part in (accept_language or "").split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        if tag and tag != "*" and quality > 0:
            weighted.append((quality, tag.lower()))
    weighted.sort(key=lambda item: -item[0])  # stable: equal weights keep their order
    for _quality, tag in weighted:
        for code in UI_LANGUAGES:
            if code.lower() == tag or code.lower().split("-")[0] == tag.split("-")[0]:
                return code
    return DEFAULT_LANGUAGE


def language_name(language: str) -> str:
    """A language's name in itself ("中文 (中国)"), for the language picker."""
    return Locale.parse(locale_dir_name(language)).get_display_name() or language
