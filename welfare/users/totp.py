"""TOTP codes (RFC 6238) and recovery codes: pure functions, no database.

- Six digits, 30-second steps, one step of clock drift either way (`VALID_WINDOW`). A code is
  identified by its time step; the sign-in service stores the last step used per user and
  refuses any step not after it, so a code (or an older one) is accepted once.
- Recovery codes carry 80 random bits (16 base-32 characters, shown in groups of four), so a
  plain SHA-256 is enough to store them: unlike a password there is nothing to guess.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import secrets

import pyotp
import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.image.svg import SvgPathImage

DIGITS = 6
INTERVAL = 30
VALID_WINDOW = 1
ISSUER = "Welfare"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
_RECOVERY_LENGTH = 16


def new_secret() -> str:
    return pyotp.random_base32(32)  # 160 bits, as RFC 4226 recommends


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=INTERVAL)


def step_at(moment: dt.datetime) -> int:
    return int(moment.timestamp()) // INTERVAL


def code_at(secret: str, moment: dt.datetime) -> str:
    return _totp(secret).at(moment)


def normalise_code(raw: str) -> str | None:
    """Six digits, spaces allowed ("123 456"); anything else is no code at all."""
    code = "".join(raw.split())
    return code if len(code) == DIGITS and code.isascii() and code.isdigit() else None


def matching_step(secret: str, raw_code: str, now: dt.datetime) -> int | None:
    """The time step whose code this is, within the window around `now`, or None."""
    code = normalise_code(raw_code)
    if code is None:
        return None
    totp = _totp(secret)
    current = step_at(now)
    found = None
    # Every candidate is compared (no early return), each in constant time.
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found


def provisioning_uri(secret: str, account: str) -> str:
    return _totp(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg_data_uri(text: str) -> str:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=2)
    code.add_data(text)
    code.make(fit=True)
    out = io.BytesIO()
    code.make_image(image_factory=SvgPathImage).save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode()


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def new_recovery_codes() -> list[str]:
    return [
        "-".join("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(4)) for _ in range(4))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def normalise_recovery_code(raw: str) -> str | None:
    """Case, spaces and dashes do not matter; anything but a code's 16 characters is None."""
    code = "".join(ch for ch in raw.upper() if ch not in " -\t")
    if len(code) != _RECOVERY_LENGTH or any(ch not in _RECOVERY_ALPHABET for ch in code):
        return None
    return code


def hash_recovery_code(raw: str) -> str | None:
    code = normalise_recovery_code(raw)
    return None if code is None else hashlib.sha256(b"recovery:" + code.encode()).hexdigest()
