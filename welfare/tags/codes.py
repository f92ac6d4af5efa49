"""The code printed on a tag, to be typed when its QR cannot be scanned.

A code is 14 random characters (70 bits from `secrets`) and one check character, in Crockford's
base32 alphabet (digits and capitals without I, L, O and U), printed in three groups of five:
`K7QM2-XHD9P-RT4WZ`. The same text is the last part of the tag URL and is what is stored.

Reading is forgiving: any case, spaces or dashes anywhere, and the letters people confuse with
digits read as those digits (O as 0, I and L as 1).

The check character makes the 15 values c1..c15 satisfy c1*a^14 + c2*a^13 + ... + c15 = 0 in
GF(32), with a = x (the field built on x^5 + x^2 + 1). Changing one character changes the sum by
(old - new) * a^k, never 0; swapping two neighbours u, v changes it by (a + 1) * (u - v) * a^k,
never 0 either (a is neither 0 nor 1). So every single substitution and every adjacent
transposition, the check character's own included, is caught before the database is asked, and
a mistyped code can be answered "check the code" rather than "not found".

Tags issued before these codes carry URL-safe random tokens (22 characters, case-sensitive);
they are still looked up exactly as stored (`TypedCode.forms`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from welfare.errors import InvalidInput

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_LENGTH = 14  # 70 bits; the brief asks for at least 64
LENGTH = RANDOM_LENGTH + 1
GROUP = 5
MAX_TYPED = 64  # the longest text read as a code (an older token is 22 characters)

_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_FIELD_POLYNOMIAL = 0b100101  # x^5 + x^2 + 1
# Whitespace and the dashes a phone keyboard may put in place of "-".
_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212]+")
_CONFUSED = str.maketrans({"O": "0", "I": "1", "L": "1"})
# A token of a tag issued before printed codes (`secrets.token_urlsafe(16)`): never "mistyped",
# even the rare one with seven dashes that reads as 15 letters and digits.
_LEGACY = re.compile(r"^[A-Za-z0-9_-]{22}$")


class MistypedCode(InvalidInput):
    """Text with the shape of a printed code whose check character does not match."""

    def __init__(self) -> None:
        super().__init__("tag", "check the code: a character is wrong or two are swapped")


def _times_a(value: int) -> int:
    value <<= 1
    return value ^ _FIELD_POLYNOMIAL if value & 0b100000 else value


def _remainder(chars: str) -> int:
    total = 0
    for ch in chars:
        total = _times_a(total) ^ _VALUE[ch]
    return total


def check_character(chars: str) -> str:
    """The character that completes `chars` (canonical: alphabet only) to a valid code."""
    return ALPHABET[_times_a(_remainder(chars))]


def is_valid(chars: str) -> bool:
    """`chars` (canonical: alphabet only, no separators) is a whole code with its check."""
    return len(chars) == LENGTH and all(ch in _VALUE for ch in chars) and _remainder(chars) == 0


def format_code(chars: str) -> str:
    """A canonical code in its printed groups: `K7QM2XHD9PRT4WZ` -> `K7QM2-XHD9P-RT4WZ`."""
    return "-".join(chars[i : i + GROUP] for i in range(0, len(chars), GROUP))


def new_code() -> str:
    """A fresh code as printed."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return format_code(body + check_character(body))


def normalise(text: str) -> str:
    """Typed text to the canonical characters: capitals, no separators, O as 0, I and L as 1."""
    return _SEPARATORS.sub("", text).upper().translate(_CONFUSED)


@dataclass(frozen=True)
class TypedCode:
    """What a typed or scanned code may be.

    `forms` are the stored codes to look for: the text as given (a tag issued before these
    codes) and, when it reads as a valid code, that code as printed. `mistyped` is set when the
    text has a printed code's shape (15 letters and digits once read) but fails the check.
    """

    forms: tuple[str, ...]
    printed: str | None
    mistyped: bool


def read_typed(text: str) -> TypedCode:
    raw = text.strip()
    if not raw or len(raw) > MAX_TYPED:
        return TypedCode(forms=(), printed=None, mistyped=False)
    chars = normalise(raw)
    if is_valid(chars):
        printed = format_code(chars)
        return TypedCode(
            forms=tuple(dict.fromkeys((printed, raw))), printed=printed, mistyped=False
        )
    shaped = len(chars) == LENGTH and chars.isascii() and chars.isalnum()
    return TypedCode(forms=(raw,), printed=None, mistyped=shaped and not _LEGACY.match(raw))


def rate_key(text: str) -> str:
    """One key per tag however its code was typed (for counting reports of a tag)."""
    typed = read_typed(text)
    return typed.printed or text.strip()[:MAX_TYPED]
