"""A software WebAuthn authenticator for tests: an EC P-256 key, attestation "none".

It answers the JSON options the server hands the browser with the JSON the browser would post
back (what `PublicKeyCredential.toJSON()` gives), built byte by byte as the WebAuthn spec lays
them out, so the server's verification runs on real signatures. Knobs let a test play a
browser on another origin, an authenticator for another relying party, one that skips user
verification, or a copied key whose counter lags.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import encode_cbor

_UP, _UV, _BE, _BS, _AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    origin: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    sign_count: int = 0
    counts: bool = True  # a counting authenticator adds one per use (synced passkeys send 0)
    user_handle: bytes | None = None
    aaguid: bytes = b"\x00" * 16

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return encode_cbor(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin}
        ).encode()

    def create(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verify_user: bool = True,
    ) -> dict[str, Any]:
        """The browser's answer to `navigator.credentials.create(options)`."""
        opts = json.loads(options) if isinstance(options, str) else options
        self.user_handle = unb64url(opts["user"]["id"])
        flags = _UP | _AT | (_UV if verify_user else 0)
        auth_data = (
            hashlib.sha256((rp_id or opts["rp"]["id"]).encode()).digest()
            + bytes([flags])
            + struct.pack(">I", self.sign_count)
            + self.aaguid
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_key()
        )
        client_data = self._client_data("webauthn.create", opts["challenge"], origin)
        attestation = encode_cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        verify_user: bool = True,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """The browser's answer to `navigator.credentials.get(options)`."""
        opts = json.loads(options) if isinstance(options, str) else options
        if sign_count is None:
            if self.counts:
                self.sign_count += 1
            sign_count = self.sign_count if self.counts else 0
        flags = _UP | (_UV if verify_user else 0)
        auth_data = (
            hashlib.sha256((rp_id or opts["rpId"]).encode()).digest()
            + bytes([flags])
            + struct.pack(">I", sign_count)
        )
        client_data = self._client_data("webauthn.get", opts["challenge"], origin)
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
