"""Phone numbers: validated with `phonenumbers` against a region, stored as E.164."""

from __future__ import annotations

from enum import StrEnum

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from welfare.errors import InvalidInput


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


def normalise_phone(raw: str, region: str, field: str | tuple[str, ...] = "phone") -> str:
    """Return the number in E.164, or raise InvalidInput naming `field`."""
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        raise InvalidInput(field, "not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput(field, f"not a valid phone number for region {region}")
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
