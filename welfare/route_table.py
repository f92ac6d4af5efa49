"""The route table's syntax: "+86=aliyun,twilio;+852=twilio". Each entry maps a calling-code
prefix (a "+" and digits) to providers in the order they are tried. Parsed once at start, so a
mistyped table stops the process with words saying what is wrong."""

from __future__ import annotations

import re

PREFIX = re.compile(r"\+[1-9][0-9]{0,5}")
NAME = re.compile(r"[a-z][a-z0-9_]{1,19}")


def parse_routes(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The entries, longest prefix first (so +852 wins over +85)."""
    entries: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        prefix, sep, names = part.partition("=")
        prefix = prefix.strip()
        if not sep or not PREFIX.fullmatch(prefix):
            raise ValueError(
                f"route {part!r}: start with a calling code such as +86, then =, then providers"
                " (e.g. +86=aliyun,twilio)"
            )
        providers = tuple(n.strip() for n in names.split(",") if n.strip())
        if not providers or not all(NAME.fullmatch(n) for n in providers):
            raise ValueError(f"route {part!r}: name its providers, e.g. aliyun,twilio")
        if len(set(providers)) != len(providers):
            raise ValueError(f"route {part!r}: a provider is named twice")
        if prefix in entries:
            raise ValueError(f"route for {prefix} is given twice")
        entries[prefix] = providers
    return sorted(entries.items(), key=lambda item: -len(item[0]))


def providers_for(table: list[tuple[str, tuple[str, ...]]], phone: str) -> tuple[str, ...]:
    """The providers the table names for `phone` (E.164), or () when no entry matches."""
    for prefix, providers in table:
        if phone.startswith(prefix):
            return providers
    return ()
