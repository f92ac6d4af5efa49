"""A small OpenID Connect provider on 127.0.0.1, in a thread, for company sign-in tests.

It publishes a discovery document and its JWKS, answers /authorize by redirecting straight
back with a code (no login form: whoever `sign_in_as` names has "signed in"), and /token checks
the client secret, the redirect URI and the PKCE `code_verifier` (S256) before it returns an
ID token signed with an RSA key made for this run. Misbehaviours a test can switch on:
`deny` (error=access_denied), `down` (every endpoint answers 503) and `tamper` ("signature",
"nonce", "expired", "audience", "issuer") for an ID token the app must refuse.

Usable from API tests (`follow`) and browser tests alike (a real HTTP server).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

KEY_ID = "local-test-key"


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class TokenRequest:
    """What /token was sent, and what it answered."""

    client_authenticated: bool
    verifier_matched: bool
    status: int


@dataclass
class LocalOidcProvider:
    client_id: str = "welfare-test-client"
    client_secret: str = "provider-client-secret-0123"
    claims: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "acme-0001",
            "email": "li.na@acme.example",
            "email_verified": True,
            "name": "Li Na",
        }
    )
    deny: bool = False
    down: bool = False
    tamper: set[str] = field(default_factory=set)
    token_requests: list[TokenRequest] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID, "use": "sig"})
        self._codes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalOidcProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def sign_in_as(self, **claims: Any) -> None:
        """Who the next /authorize signs in: `sub`, `email`, `email_verified`, `name`."""
        self.claims = claims

    def follow(self, authorization_url: str) -> str:
        """Visit /authorize as a browser would; the callback URL it redirects to."""
        response = requests.get(authorization_url, allow_redirects=False, timeout=10)
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    # --- what the endpoints do -----------------------------------------------------------------

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False, alg="RS256")]}

    def authorize(self, query: dict[str, str]) -> str:
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        back: dict[str, str] = {"state": query.get("state", "")}
        if self.deny:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            with self._lock:
                self._codes[code] = {
                    "client_id": query.get("client_id"),
                    "redirect_uri": redirect_uri,
                    "nonce": query.get("nonce"),
                    "challenge": query.get("code_challenge"),
                    "method": query.get("code_challenge_method"),
                    "claims": dict(self.claims),
                }
            back["code"] = code
        return f"{redirect_uri}?{urlencode(back)}"

    def token(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            client_id, _, secret = decoded.partition(":")
        authenticated = client_id == self.client_id and secret == self.client_secret
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        matched = bool(
            grant
            and grant["method"] == "S256"
            and verifier
            and _s256(verifier) == grant["challenge"]
        )
        if not authenticated:
            status, body = 401, {"error": "invalid_client"}
        elif (
            grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != grant["redirect_uri"]
            or not matched
        ):
            status, body = 400, {"error": "invalid_grant"}
        else:
            status, body = (
                200,
                {
                    "access_token": secrets.token_urlsafe(16),
                    "token_type": "Bearer",
                    "expires_in": 300,
                    "id_token": self._id_token(grant),
                },
            )
        self.token_requests.append(TokenRequest(authenticated, matched, status))
        return status, body

    def _id_token(self, grant: dict[str, Any]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **grant["claims"],
        }
        if "nonce" in self.tamper:
            claims["nonce"] = "not-the-nonce-the-app-sent"
        if "expired" in self.tamper:
            claims["iat"], claims["exp"] = now - 3600, now - 1800
        if "audience" in self.tamper:
            claims["aud"] = "some-other-client"
        if "issuer" in self.tamper:
            claims["iss"] = "https://impostor.example"
        key = self.key
        if "signature" in self.tamper:  # same key id, another key: the signature cannot match
            key = RSAKey.generate_key(2048, parameters={"kid": KEY_ID})
        return jwt.encode({"alg": "RS256", "kid": KEY_ID}, claims, key)


def _handler_for(provider: LocalOidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet in test output
            return

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if provider.down:
                return self._json(503, {"error": "temporarily_unavailable"})
            if parts.path == "/.well-known/openid-configuration":
                return self._json(200, provider.discovery())
            if parts.path == "/jwks":
                return self._json(200, provider.jwks())
            if parts.path == "/authorize":
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                self.send_response(302)
                self.send_header("Location", provider.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            if provider.down:
                return self._json(503, {"error": "temporarily_unavailable"})
            if urlsplit(self.path).path != "/token":
                return self._json(404, {"error": "not_found"})
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, body = provider.token(form, self.headers.get("Authorization"))
            return self._json(status, body)

    return Handler


@contextmanager
def running_provider(**options: Any) -> Iterator[LocalOidcProvider]:
    provider = LocalOidcProvider(**options).start()
    try:
        yield provider
    finally:
        provider.stop()
