"""Phone numbers: validated with `phonenumbers` against a region, stored as E.164.

What a person may type: digits (full-width digits too, as a Chinese keyboard gives them),
spaces, and the separators + - ( ) and dots. Nothing else is read as part of a number:

- Letters are refused, never turned into digits. `phonenumbers` reads "9abc 1234" as the
  keypad letters it would dial (9222 1234): a typo would silently store a stranger's number.
- Extensions ("ext 12", "x12", "#12") are refused too. E.164 has no extension, so it would be
  dropped without a word, and neither an SMS nor an automated call can dial one: ask for the
  person's direct number instead.
"""

from __future__ import annotations

from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from welfare.errors import InvalidInput

SEPARATORS = frozenset(" +-().")
FULL_WIDTH_DIGITS = frozenset("\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19")


class PhoneProblem(StrEnum):
    missing = "missing"
    letters = "letters"
    characters = "characters"
    unparseable = "unparseable"
    invalid = "invalid"


class InvalidPhone(InvalidInput):
    """A refused phone number: `problem` says why, `example` is a number of the region to copy
    (for pages that explain the error in the reader's language)."""

    def __init__(
        self, field: str | tuple[str, ...], problem: PhoneProblem, message: str, example: str
    ) -> None:
        super().__init__(field, message)
        self.problem = problem
        self.example = example


class LineType(StrEnum):
    mobile = "mobile"
    landline = "landline"
    other = "other"


def valid_region(region: str) -> str:
    region = region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            "phone_region", f"unknown region code {region!r}; use ISO 3166 like 'HK'"
        )
    return region


def example_phone(region: str) -> str:
    """A mobile number of the region as people write it ('+852 5123 4567'), for messages."""
    number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if number is None:
        number = phonenumbers.example_number(region)
    if number is None:
        return "+852 5123 4567"
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def _allowed(char: str) -> bool:
    return char in SEPARATORS or char.isspace() or "0" <= char <= "9" or char in FULL_WIDTH_DIGITS


def normalise_phone(raw: str, region: str, field: str | tuple[str, ...] = "phone") -> str:
    """Return the number in E.164, or raise InvalidPhone (an InvalidInput) naming `field`."""
    example = example_phone(region)
    if any(char.isalpha() for char in raw):
        raise InvalidPhone(
            field,
            PhoneProblem.letters,
            "letters are not allowed in a phone number, not even for an extension:"
            f" type only the digits, such as {example}",
            example,
        )
    if not all(_allowed(char) for char in raw):
        raise InvalidPhone(
            field,
            PhoneProblem.characters,
            "only digits, spaces and the signs + - ( ) . are allowed in a phone number:"
            f" type it such as {example}",
            example,
        )
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        raise InvalidPhone(
            field,
            PhoneProblem.unparseable,
            f"not a phone number: type the digits, such as {example}",
            example,
        ) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(
            field,
            PhoneProblem.invalid,
            f"not a valid phone number for region {region}: check the number of digits, or"
            f" start with + and the country code, such as {example}",
            example,
        )
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def line_type(e164: str) -> LineType:
    """Mobile numbers get SMS and calls; a landline gets a call, not an SMS."""
    kind = phonenumbers.number_type(phonenumbers.parse(e164))
    if kind == PhoneNumberType.MOBILE:
        return LineType.mobile
    if kind == PhoneNumberType.FIXED_LINE:
        return LineType.landline
    # Several regions (US, CA) cannot tell mobile from fixed by number alone.
    if kind == PhoneNumberType.FIXED_LINE_OR_MOBILE:
        return LineType.mobile
    return LineType.other


def display_phone(e164: str) -> str:
    """For people to read and dial: '+852 2345 6789'."""
    return phonenumbers.format_number(phonenumbers.parse(e164), PhoneNumberFormat.INTERNATIONAL)
