"""Phone numbers: parsed against the site's region, stored in E.164, typed mobile or landline."""

from __future__ import annotations

import pytest

from welfare.errors import InvalidInput
from welfare.phones import LineType, line_type, normalise_phone, valid_region


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


@pytest.mark.parametrize("raw", ["abc", "", "+", "phone me"])
def test_normalise_phone_unparseable_text_raises_not_a_phone_number(raw: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_phone(raw, "HK")
    assert caught.value.loc == ("phone",)
    assert caught.value.message == "not a phone number"


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
