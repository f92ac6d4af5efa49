"""A refused value says what is wrong and what to give instead, never only that it is wrong:
the JSON API's 422 `msg` (in English), and the pages' field messages and 422 page (in the
reader's language). Pydantic's own English ("Input should be a valid UUID, invalid character:
found `m` at 0", "Field required") never reaches anyone."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, ValidationError

from api.pages.forms import VALUE_PROBLEMS, page_value_problem, refused_words, value_problem
from welfare.residents.models import Resident
from welfare.sites.models import Household, Site
from welfare.users.models import User

HTML = {"Accept": "text/html"}
PYDANTIC_WORDS = ("Input should", "Field required", "String should", "Value error,", "Extra inputs")


def _msgs(response: Any) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {str(e["loc"][-1]): e["msg"] for e in response.json()["detail"]}


def _no_pydantic_english(text: str) -> None:
    for words in PYDANTIC_WORDS:
        assert words not in text


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("household_id", "not-an-id", "Give an id as the service gave it, such as 3f2b1c4e-"),
        ("birth_year", "nineteen forty", "Give a whole number, such as 3."),
        ("birth_year", 1700, "Give 1880 or more."),
        ("height_cm", 400, "Give 250 or less."),
        ("sex", "robot", "Choose one of 'female', 'male', 'other' or 'unknown'."),
        ("birth_date", "5 March 1942", "Give a date like 2026-12-31."),
        ("aliases", "Old Wang", 'Give a list, such as ["a", "b"].'),
        ("preferred_name", "x" * 201, "This is too long: shorten it to at most 200 characters."),
        ("languages", ["klingon!"], "unknown language 'klingon!': use a code such as ko, zh-CN"),
    ],
)
def test_a_refused_resident_field_says_what_to_give_instead(
    client: TestClient,
    headers_for: Callable[..., dict[str, str]],
    make_household: Callable[..., Household],
    field: str,
    value: Any,
    expected: str,
) -> None:
    body = {"household_id": str(make_household().id), "full_name": "Wang Jianguo", field: value}
    response = client.post("/api/v1/residents", json=body, headers=headers_for("staff"))
    messages = _msgs(response)
    assert any(expected in message for message in messages.values()), messages
    _no_pydantic_english(response.text)


def test_a_missing_field_and_a_body_that_is_not_json_say_how_to_fix_them(
    client: TestClient, headers_for: Callable[..., dict[str, str]]
) -> None:
    staff = headers_for("staff")
    missing = client.post("/api/v1/residents", json={"full_name": "Li"}, headers=staff)
    assert _msgs(missing)["household_id"] == "Required: fill this in."
    broken = client.post(
        "/api/v1/residents",
        content=b'{"full_name": "Li",',
        headers=staff | {"Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["msg"] == (
        "The body is not valid JSON: check its quotes, commas and brackets."
    )
    _no_pydantic_english(missing.text + broken.text)


def test_a_bad_id_or_time_in_the_url_says_what_to_give(
    client: TestClient, headers_for: Callable[..., dict[str, str]]
) -> None:
    staff = headers_for("staff")
    bad_id = client.get("/api/v1/residents/not-an-id", headers=staff)
    assert _msgs(bad_id)["resident_id"].startswith("Give an id as the service gave it")
    bad_time = client.get("/api/v1/visits?start_from=yesterday", headers=staff)
    assert "like 2026-12-31T09:30:00+08:00" in _msgs(bad_time)["start_from"]
    _no_pydantic_english(bad_id.text + bad_time.text)


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ko-KR", "서비스가 알려 준 그대로 ID를 입력하십시오"),
        ("zh-CN", "请填写本服务给出的 ID"),
        ("en", "Give an id as the service gave it"),
    ],
)
def test_the_422_page_names_each_refused_field_and_what_to_give_in_the_readers_language(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    language: str,
    expected: str,
) -> None:
    page_login(make_user("staff", [site], language=language))
    page = client.get("/console/residents/not-an-id", headers=HTML)
    assert page.status_code == 422
    assert "<code>resident_id</code>" in page.text
    assert expected in page.text
    _no_pydantic_english(page.text)


def test_a_korean_reader_is_told_what_is_wrong_with_the_year_of_birth_in_korean(
    client: TestClient,
    make_user: Callable[..., User],
    site: Site,
    page_login: Callable[..., str],
    make_resident: Callable[..., Resident],
) -> None:
    resident = make_resident()
    csrf = page_login(make_user("staff", [site], language="ko-KR"))
    form = {"full_name": "Li Mei", "sex": "female", "risk_level": "high"}
    form |= {"birth_year": "nineteen forty", "csrf_token": csrf}
    response = client.post(f"/console/residents/{resident.id}/edit", data=form, headers=HTML)
    assert response.status_code == 422
    assert "출생 연도를 네 자리 숫자로 입력하세요(1880년 이후). 예: 1940." in response.text
    _no_pydantic_english(response.text)


# --- the words themselves: each one fills in from the errors pydantic really gives ---------


class Everything(BaseModel, extra="forbid"):
    text: str = Field(min_length=2, max_length=5)
    one: str = Field(min_length=1)
    code: str = Field(pattern=r"^[A-Z]{2}$")
    count: int = Field(ge=1, le=9)
    above: int = Field(gt=0, lt=10)
    ratio: float
    flag: bool
    ident: uuid.UUID
    day: dt.date
    moment: dt.datetime
    at: dt.time
    items: list[int] = Field(min_length=1, max_length=2)
    nested: dict[str, int]


BAD = {
    "text": "x" * 9,
    "one": "",
    "code": "hk",
    "count": 0,
    "above": 10,
    "ratio": "half",
    "flag": "perhaps",
    "ident": "m",
    "day": "tomorrow",
    "moment": "soon",
    "at": "noonish",
    "items": [],
    "nested": "x",
    "surplus": 1,
}


def test_every_error_pydantic_gives_for_a_bad_value_has_words_with_its_numbers_filled_in() -> None:
    with pytest.raises(ValidationError) as refused:
        Everything(**BAD)
    errors = refused.value.errors()
    assert len(errors) == len(BAD)
    for error in errors:
        assert error["type"] in VALUE_PROBLEMS or error["type"] == "string_too_short", error
        for language in ("en", "zh-CN", "ko-KR"):
            words = value_problem(language, error)
            assert words and "%(" not in words, (error, language, words)
            _no_pydantic_english(words)
    by_field = {error["loc"][0]: value_problem("en", error) for error in errors}
    assert by_field["text"] == "This is too long: shorten it to at most 5 characters."
    assert by_field["one"] == "Must not be empty: type something."
    assert by_field["count"] == "Give 1 or more."
    assert by_field["above"] == "Give less than 10."
    assert by_field["items"] == "Give at least 1 of them."
    assert "^[A-Z]{2}$" in by_field["code"]
    assert by_field["surplus"] == "Not a field this accepts: remove it or check its spelling."


def test_a_page_without_its_own_hint_for_a_field_says_what_is_wrong_with_the_value() -> None:
    with pytest.raises(ValidationError) as refused:
        Everything(**(BAD | {"count": "many"}))
    hinted = refused_words("ko-KR", refused.value, {"text": "Required: fill this in."})
    assert hinted[0] == "필수 항목입니다. 입력하십시오."  # the page's hint, translated
    assert "정수를 입력하십시오. 예: 3." in hinted  # no hint for count: what to give instead
    assert "Please check what you entered." not in hinted


def test_text_with_a_nul_character_is_explained_in_the_readers_language() -> None:
    from welfare.visits.models import VisitRecord

    with pytest.raises(ValidationError) as refused:
        VisitRecord(outcome="well", notes="copied\x00text")  # type: ignore[arg-type]
    error = refused.value.errors()[0]
    assert "NUL" in value_problem("en", error)  # the API names the byte
    on_page = page_value_problem("en", error)
    assert on_page.startswith("The text holds an invisible control character")
    assert "NUL" not in page_value_problem("ko-KR", error)
    assert page_value_problem("ko-KR", error) != on_page
