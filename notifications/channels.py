"""The channel protocol: what the dispatcher needs from a provider, and nothing Twilio-specific.

Implementations: `TwilioChannel` (notifications/twilio_channel.py), `ConsoleChannel`
(notifications/console_channel.py); tests add fakes. A channel only talks to the provider: it
never touches the database. The dispatcher records what it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Accepted:
    """The provider took the message or call; `provider_id` is its SID."""

    provider_id: str
    status: str  # the provider's word: queued, accepted, initiated...


class ChannelError(Exception):
    """The provider refused or could not be reached.

    `permanent`: retrying cannot help (invalid number, opted out, landline for SMS); the
    escalation moves on at once. Otherwise the dispatcher retries with backoff, honouring
    `retry_after` (seconds) when the provider gave one.
    """

    def __init__(
        self,
        reason: str,
        *,
        code: str | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason  # readable words for the timeline; no personal data
        self.code = code  # the provider's error code, e.g. "21211"
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    """`language` is the contact's language tag, which the text was rendered in; a provider
    needs nothing from it (the text and the TwiML carry it), the console channel shows it."""

    name: str

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        status_callback: str | None,
        idempotency_key: str,
        language: str | None = None,
    ) -> Accepted: ...

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
        """`machine_callback`: where the provider reports who answered (a person or an
        answering machine), when it can tell; a channel that cannot ignores it."""
        ...


class CallControl(Protocol):
    """Changing a call while it is live: after an answering machine picked up, the call plays
    a short voicemail instead of the keypress script (notifications/webhooks.py)."""

    def update_call(self, *, provider_id: str, twiml: str) -> None: ...
