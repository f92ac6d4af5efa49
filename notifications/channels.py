"""What the dispatcher hands a provider, and nothing provider-specific.

The dispatcher renders each outbox row into a neutral `Outgoing`: an SMS's `Text`, or a call's
`CallScript` (what to say, which keys mean what). A `Sender` takes it to its provider; the
`ChannelRegistry` says which sender carries each kind of channel (`welfare.channels.ChannelKind`).

A push is a `Notice`. Senders: `TwilioSender` (notifications/twilio/sender.py), `AliyunSmsSender`
(notifications/aliyun/sms.py, mainland-China SMS), `WebPushSender`
(notifications/webpush/sender.py) and `ConsoleChannel` (notifications/console_channel.py);
tests add fakes at the provider's HTTP boundary. A sender
only talks to its provider: it never touches the database. The dispatcher records what it
answers. Adding a channel or a provider: docs/channels.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from notifications.messages import CallPurpose
from welfare.channels import ChannelKind


@dataclass(frozen=True)
class Accepted:
    """The provider took the message or call; `provider_id` is its id for it (a Twilio SID)."""

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


@dataclass(frozen=True)
class Text:
    """A written message: an SMS body, or a WhatsApp message's text. `fields` are the named
    values the text was made from (site, reference, link...): a provider that sends approved
    templates instead of free text (WhatsApp, mainland China's SMS) sends those."""

    body: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def rendered(cls, render: Callable[..., str], *args: Any, **fields: str) -> Text:
        """The text `render(*args, **fields)` makes, with its fields kept."""
        return cls(render(*args, **fields), dict(fields))


# What each key of a call does, in words (the console channel shows them). The prompt of the
# script says what 1 means for the call's purpose: coming, will check, is well.
CALL_KEYS: Mapping[str, str] = {"1": "confirms", "2": "connects to the site office"}


@dataclass(frozen=True)
class CallScript:
    """A call: `text` is said, then the prompt for `purpose` ("press 1 if you are coming...");
    `keys` says what each key does. Without an answer it is said once more, then goodbye.
    `detect_machine`: an answering machine gets a short voicemail instead, and the call counts
    as missed (incident calls; a resident's check-in call has no voicemail to leave)."""

    text: str
    purpose: CallPurpose = "found"
    keys: Mapping[str, str] = field(default_factory=lambda: dict(CALL_KEYS))
    detect_machine: bool = False


@dataclass(frozen=True)
class PushTarget:
    """Where a push goes: the browser's endpoint at its push service and the keys that encrypt
    the payload for it alone (from the user's push subscription)."""

    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True)
class Notice:
    """A notification on a phone (web push): a title and a short body saying no more than the
    SMS would, the page it opens (`url`, a path behind sign-in), and a picture to show when the
    phone can fetch it (`image`, a path behind sign-in; else the site's icon)."""

    title: str
    body: str
    url: str
    target: PushTarget
    image: str | None = None
    tag: str = ""  # a newer notice with the same tag replaces the older one on the phone


@dataclass(frozen=True)
class Outgoing:
    """One outbox row, rendered, on its way to a sender. `message_id` lets the provider's news
    about it (delivery, keys, who answered) find the row again."""

    message_id: uuid.UUID
    kind: ChannelKind
    to: str
    language: str | None
    idempotency_key: str
    content: Text | CallScript | Notice
    template: str = ""  # what the row is (found_alert, all_clear...), for template providers


class Sender(Protocol):
    """A provider's way of carrying messages of some kinds."""

    name: str

    def send(self, outgoing: Outgoing) -> Accepted:
        """Hand `outgoing` over; raise `ChannelError` when the provider refuses it."""
        ...

    def rate_key(self, kind: ChannelKind) -> str:
        """Whom the provider counts this send against (the dispatcher's rate limit per sender)."""
        ...


class ChannelRegistry:
    """Which senders carry each channel kind, by provider name. The first registered for a
    kind is its default; routes per destination (notifications/routes.py) pick others by name.
    A kind without a sender cannot be sent: its rows fail in words ("no sender for whatsapp"),
    they are never lost silently."""

    def __init__(self, senders: Mapping[ChannelKind, Sender] | None = None) -> None:
        self._senders: dict[ChannelKind, dict[str, Sender]] = {}
        for kind, sender in (senders or {}).items():
            self.register(kind, sender)

    @classmethod
    def every_kind(
        cls, sender: Sender, kinds: tuple[ChannelKind, ...] | None = None
    ) -> ChannelRegistry:
        """One sender for every kind it carries (Twilio and the console carry SMS and calls)."""
        return cls({kind: sender for kind in kinds or (ChannelKind.sms, ChannelKind.voice)})

    def register(self, kind: ChannelKind, sender: Sender) -> None:
        self._senders.setdefault(kind, {})[sender.name] = sender

    def sender(self, kind: ChannelKind, provider: str | None = None) -> Sender | None:
        """The sender of `provider` for `kind`, or the kind's default without a name."""
        senders = self._senders.get(kind, {})
        if provider is not None:
            return senders.get(provider)
        return next(iter(senders.values()), None)

    def kinds(self) -> list[ChannelKind]:
        return list(self._senders)
