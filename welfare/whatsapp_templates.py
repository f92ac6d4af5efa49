"""The WhatsApp template table's shape (settings `WELFARE_TWILIO_WHATSAPP_TEMPLATES`): per
outbox template, the approved Content SID per language and the text's fields that fill the
template's numbered variables. Checked at start, so a mistake stops the process in words."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class WhatsAppTemplate:
    content_sid: dict[str, str]  # language tag -> Content SID ("HX" + 32 hex)
    variables: tuple[str, ...]  # the text's fields for {{1}}, {{2}}, ...

    def sid_for(self, language: str | None) -> str | None:
        """The SID for `language`, its base language ("zh" for "zh-HK"), or English."""
        tag = language or "en"
        for candidate in (tag, tag.split("-")[0], "en"):
            for known, sid in self.content_sid.items():
                if known.lower() == candidate.lower() or known.split("-")[0] == candidate:
                    return sid
        return None


def parse_templates(text: str) -> dict[str, WhatsAppTemplate]:
    try:
        raw = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"the WhatsApp templates are not JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ValueError('give the WhatsApp templates as {"found_alert": {...}, ...}')
    table: dict[str, WhatsAppTemplate] = {}
    for name, entry in raw.items():
        sids = entry.get("content_sid") if isinstance(entry, dict) else None
        variables = entry.get("variables", []) if isinstance(entry, dict) else None
        if not isinstance(sids, dict) or not sids:
            raise ValueError(f'WhatsApp template {name!r}: give "content_sid" per language')
        if not all(isinstance(s, str) and s.startswith("HX") for s in sids.values()):
            raise ValueError(f"WhatsApp template {name!r}: a Content SID starts with HX")
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            raise ValueError(f'WhatsApp template {name!r}: "variables" is a list of field names')
        table[name] = WhatsAppTemplate(dict(sids), tuple(variables))
    return table
