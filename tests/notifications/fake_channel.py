"""A stand-in for Twilio's two requests, behind the real `TwilioSender`: what the dispatcher
hands Twilio arrives here as Twilio would get it (tests/conftest.py's `channel` fixture)."""

from __future__ import annotations

import threading
import uuid

from notifications.channels import Accepted, ChannelError, Outgoing
from notifications.twilio.sender import TwilioSender
from welfare.channels import ChannelKind
from welfare.settings import Settings


class FakeChannel:
    """A stand-in for Twilio's two requests (an SMS, a call with its TwiML), and a sender
    through `TwilioSender` like the real client: the dispatcher's neutral messages arrive here
    exactly as Twilio would get them. (kind, to, content) per send; "call" is Twilio's word."""

    name = "fake"

    def __init__(self, settings: Settings | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []  # (kind, to, content)
        self.failures: list[ChannelError] = []
        self.lock = threading.Lock()
        base = Settings(public_base_url="https://welfare.test", _env_file=None)  # type: ignore[call-arg]
        self._sender = TwilioSender(self, settings or base)

    def send(self, outgoing: Outgoing) -> Accepted:
        return self._sender.send(outgoing)

    def rate_key(self, kind: ChannelKind) -> str:
        return self._sender.rate_key(kind)

    def _go(self, kind: str, to: str, content: str) -> Accepted:
        with self.lock:
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append((kind, to, content))
            return Accepted(provider_id=f"{kind[:2].upper()}{uuid.uuid4().hex}", status="queued")

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
    ) -> Accepted:
        assert status_callback and "message-status" in status_callback
        return self._go("sms", to, body)

    def place_call(
        self,
        *,
        to: str,
        twiml: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
        machine_callback: str | None = None,
    ) -> Accepted:
        assert "<Gather" in twiml
        return self._go("call", to, twiml)
