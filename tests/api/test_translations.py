"""Every string the pages show is in the Simplified Chinese catalogue, placeholders intact."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir

from api.pages.i18n import negotiate, translations_for

ROOT = Path(__file__).resolve().parents[2]
METHOD_MAP = [
    ("**.py", "python"),
    ("templates/**.html", "jinja2.ext.babel_extract"),
]
OPTIONS = {
    "templates/**.html": {
        "extensions": "jinja2.ext.i18n",
        "trim_blocks": "true",
        "lstrip_blocks": "true",
    }
}
KEYWORDS = {"gettext": (2,), "N_": None, "_": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w*\}")


def ui_messages() -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT / "api", METHOD_MAP, OPTIONS, keywords=KEYWORDS
    ):
        if isinstance(message, tuple):
            found.update(m for m in message if m)
        elif message:
            found.add(message)
    return found


def test_the_extractor_finds_the_page_strings() -> None:
    messages = ui_messages()
    # Guards against an extraction that silently finds nothing and so checks nothing.
    assert {"Sign in", "Wrong username or password.", "Not found"} <= messages
    assert len(messages) > 40


def test_every_ui_string_has_a_simplified_chinese_translation() -> None:
    chinese = translations_for("zh-CN")
    missing = sorted(m for m in ui_messages() if chinese.gettext(m) == m)
    assert missing == [], f"untranslated in zh_CN: {missing}"


def test_translations_keep_their_placeholders() -> None:
    chinese = translations_for("zh-CN")
    for message in ui_messages():
        translated = chinese.gettext(message)
        assert sorted(PLACEHOLDER.findall(translated)) == sorted(PLACEHOLDER.findall(message)), (
            message
        )


def test_unknown_languages_fall_back_to_english() -> None:
    assert translations_for("xx").gettext("Sign in") == "Sign in"
    assert negotiate("zh-HK,zh;q=0.9") == "zh-CN"
    assert negotiate("ko") == "ko-KR"
    assert negotiate("de-DE,fr;q=0.5") == "en"
    assert negotiate(None) == "en"
