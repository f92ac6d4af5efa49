"""BCP 47 tags normalised to their usual case."""

from __future__ import annotations

import pytest

from welfare.languages import normalise_language, normalise_languages


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("zh-cn", "zh-CN"),
        ("ZH-CN", "zh-CN"),
        ("zh_CN", "zh-CN"),
        (" ko-kr ", "ko-KR"),
        ("en-gb", "en-GB"),
        ("EN", "en"),
        ("yue", "yue"),
        ("zh-hant-hk", "zh-Hant-HK"),
        ("ZH-HANS", "zh-Hans"),
        ("es-419", "es-419"),
        ("sl-rozaj", "sl-rozaj"),
        ("de-ch-1901x", "de-CH-1901x"),
    ],
)
def test_normalise_language_uses_the_usual_case(raw: str, expected: str) -> None:
    assert normalise_language(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "c",
        "chinese",
        "zh-",
        "zh--CN",
        "zh-CN-",
        "zh CN",
        "12",
        "zh-C",
        "zh-CN; DROP TABLE",
        "中文",
        "zh-CN\nx",
        "x" * 1000,
    ],
)
def test_normalise_language_rejects_what_is_not_a_tag(raw: str) -> None:
    with pytest.raises(ValueError, match="BCP 47"):
        normalise_language(raw)


def test_normalise_language_error_message_is_short_for_long_input() -> None:
    with pytest.raises(ValueError) as caught:
        normalise_language("y" * 5000)
    assert len(str(caught.value)) < 200


def test_normalise_languages_keeps_order_and_drops_duplicates_after_normalising() -> None:
    assert normalise_languages(["zh-cn", "en", "zh-CN", "ko_kr", "EN"]) == ["zh-CN", "en", "ko-KR"]


def test_normalise_languages_empty_list_is_empty() -> None:
    assert normalise_languages([]) == []


def test_normalise_languages_raises_on_any_bad_tag() -> None:
    with pytest.raises(ValueError):
        normalise_languages(["en", "not a tag"])
