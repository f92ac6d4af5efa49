"""BCP 47 language tags, normalised to their usual case (zh-CN, zh-Hant-HK, ko-KR, en-GB)."""

from __future__ import annotations

import re

_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-[A-Za-z0-9]{5,8})*$")


def normalise_language(tag: str) -> str:
    tag = tag.strip().replace("_", "-")
    if not _TAG.match(tag):
        raise ValueError(
            f"unknown language {tag[:40]!r}: use a code such as ko, zh-CN, en"
            " (a BCP 47 language tag, such as ko-KR or zh-Hant-HK)"
        )
    parts = tag.split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) == 2 or (len(part) == 3 and part.isdigit()):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def normalise_languages(tags: list[str]) -> list[str]:
    seen: list[str] = []
    for tag in tags:
        normal = normalise_language(tag)
        if normal not in seen:
            seen.append(normal)
    return seen
