"""Phone numbers: parsed against the site's region, stored in E.164, typed mobile or landline."""

from __future__ import annotations

import string

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from welfare.errors import InvalidInput
from welfare.phones import (
    InvalidPhone,
    LineType,
    PhoneProblem,
    line_type,
    normalise_phone,
    valid_region,
)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("9123 4567", "HK", "+85291234567"),
        ("91234567", "HK", "+85291234567"),
        ("(852) 9123 4567", "HK", "+85291234567"),
        ("2345 6789", "HK", "+85223456789"),
        ("+852 9123 4567", "GB", "+85291234567"),
        ("020 7946 0018", "GB", "+442079460018"),
        ("07911 123456", "GB", "+447911123456"),
        ("+44 7911 123456", "HK", "+447911123456"),
        ("+82 10-1234-5678", "HK", "+821012345678"),
        ("+1 650 253 0000", "HK", "+16502530000"),
    ],
)
def test_normalise_phone_returns_e164(raw: str, region: str, expected: str) -> None:
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize("raw", ["1234", "9123 456", "+44 1234", "12345678901234567890"])
def test_normalise_phone_invalid_number_raises_naming_the_field(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_phone(raw, "HK", "secondary_phone")
    assert caught.value.loc == ("secondary_phone",)
    assert caught.value.status_hint == 422


@pytest.mark.parametrize("raw", ["", "+", "()", " - "])
def test_normalise_phone_unparseable_text_raises_not_a_phone_number(raw: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw, "HK")
    assert caught.value.loc == ("phone",)
    assert caught.value.problem is PhoneProblem.unparseable
    assert caught.value.message == "not a phone number: type the digits, such as +852 5123 4567"


@pytest.mark.parametrize(
    "raw",
    ["+852 9abc 1234", "abc", "phone me", "9123 4567 ext 12", "9123 4567 x12", "9123 4S67", "九"],
)
def test_letters_are_refused_never_read_as_keypad_digits(raw: str) -> None:
    # phonenumbers would store "+852 9abc 1234" as +85292221234: someone else's phone.
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw, "HK", "secondary_phone")
    assert caught.value.loc == ("secondary_phone",)
    assert caught.value.problem is PhoneProblem.letters
    assert caught.value.message.startswith("letters are not allowed in a phone number")
    assert "such as +852 5123 4567" in caught.value.message


@pytest.mark.parametrize("raw", ["9123#4567", "9123 4567 #12", "+852/9123 4567", "9123*4567"])
def test_other_signs_are_refused_with_what_is_allowed(raw: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw, "HK")
    assert caught.value.problem is PhoneProblem.characters
    assert "only digits, spaces and the signs + - ( ) . are allowed" in caught.value.message


def test_the_example_in_the_message_is_of_the_sites_region() -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone("020 79x6 0018", "GB")
    assert caught.value.example == "+44 7400 123456"


def test_full_width_digits_from_a_chinese_keyboard_are_digits() -> None:
    full_width = "\uff19\uff11\uff12\uff13 \uff14\uff15\uff16\uff17"
    assert normalise_phone(full_width, "HK") == "+85291234567"


# Numbers of the regions the product serves, as E.164, for the properties below.
VALID_NUMBERS = [
    "+85291234567",
    "+85223456789",
    "+85261234567",
    "+447911123456",
    "+442079460018",
    "+821012345678",
    "+16502530000",
    "+8613812345678",
]
LETTERS = st.characters(categories=["Lu", "Ll", "Lt", "Lm", "Lo"])


@given(
    number=st.sampled_from(VALID_NUMBERS),
    letter=LETTERS,
    where=st.integers(min_value=0, max_value=20),
)
def test_any_number_holding_a_letter_is_refused(number: str, letter: str, where: int) -> None:
    where = min(where, len(number))
    raw = number[:where] + letter + number[where:]
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(raw, "HK")
    assert caught.value.problem is PhoneProblem.letters


@given(text=st.text(min_size=1, max_size=30).filter(lambda t: any(c.isalpha() for c in t)))
def test_any_text_holding_a_letter_is_refused(text: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalise_phone(text, "HK")
    assert caught.value.problem is PhoneProblem.letters


@given(
    number=st.sampled_from(VALID_NUMBERS),
    separators=st.lists(st.sampled_from([" ", "-", ".", "  ", " - "]), min_size=20, max_size=20),
    bracket_country=st.booleans(),
)
def test_any_valid_number_with_separators_round_trips(
    number: str, separators: list[str], bracket_country: bool
) -> None:
    parsed = phonenumbers.parse(number)
    country, national = str(parsed.country_code), str(parsed.national_number)
    spaced = "".join(d + separators[i] for i, d in enumerate(national)).strip(" -.")
    head = f"(+{country})" if bracket_country else f"+{country}"
    raw = f"{head} {spaced}"
    assert normalise_phone(raw, "HK") == number
    assert normalise_phone(normalise_phone(raw, "GB"), "KR") == number


@given(digits=st.text(alphabet=string.digits + " +-().", max_size=30))
def test_digits_and_separators_never_raise_anything_but_invalid_input(digits: str) -> None:
    try:
        normalise_phone(digits, "HK")
    except InvalidPhone as refused:
        assert refused.problem in (PhoneProblem.unparseable, PhoneProblem.invalid)


def test_normalise_phone_accepts_a_tuple_location() -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_phone("1", "HK", ("contacts", "0", "phone"))
    assert caught.value.loc == ("contacts", "0", "phone")


def test_normalise_phone_local_number_is_read_in_the_given_region() -> None:
    # The same digits mean different numbers in different regions.
    assert normalise_phone("2345 6789", "HK") == "+85223456789"
    with pytest.raises(InvalidInput):
        normalise_phone("2345 6789", "GB")


def test_normalise_phone_very_long_input_is_invalid_not_an_exception() -> None:
    with pytest.raises(InvalidInput):
        normalise_phone("9" * 1000, "HK")


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+85291234567", LineType.mobile),
        ("+85261234567", LineType.mobile),
        ("+85223456789", LineType.landline),
        ("+85231234567", LineType.landline),
        ("+447911123456", LineType.mobile),
        ("+442079460018", LineType.landline),
        ("+821012345678", LineType.mobile),
        # US numbers cannot be told apart: treated as mobile so an SMS is tried.
        ("+16502530000", LineType.mobile),
        ("+852800123456", LineType.other),
    ],
)
def test_line_type_tells_mobile_from_landline(e164: str, expected: LineType) -> None:
    assert line_type(e164) is expected


@pytest.mark.parametrize(("raw", "expected"), [("HK", "HK"), ("hk", "HK"), (" gb ", "GB")])
def test_valid_region_normalises_case_and_space(raw: str, expected: str) -> None:
    assert valid_region(raw) == expected


@pytest.mark.parametrize("raw", ["XX", "ZZ", "001", "", "HKG", "uk"])
def test_valid_region_unknown_code_raises_naming_phone_region(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        valid_region(raw)
    assert caught.value.loc == ("phone_region",)
