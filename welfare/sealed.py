"""Secrets the service must read back (TOTP seeds, identity-provider secrets), sealed at rest.

Passwords and tokens are hashed because they are only ever compared; these must be recovered, so
they are encrypted with a key derived from `WELFARE_SECRET_KEY` (Fernet: AES-128-CBC with an
HMAC-SHA256 tag). A database dump alone therefore reveals none of them. Rotating the secret key
makes sealed values unreadable, which `unseal` reports as `SealBroken` rather than as garbage.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

_PURPOSE = b"welfare-sealed-v1:"


class SealBroken(Exception):
    """The sealed value was altered, or sealed under another secret key."""


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(_PURPOSE + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, plaintext: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode("ascii")


def unseal(secret_key: str, sealed: str) -> str:
    try:
        return _fernet(secret_key).decrypt(sealed.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError) as exc:
        raise SealBroken("sealed value cannot be opened with this secret key") from exc
