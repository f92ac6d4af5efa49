"""The channel without credentials: logs (masked), remembers, and plays the provider's part.

`welfare demo` and the tests use it. Every send is logged at INFO with the number masked
("+852****4567") and no text (the text goes to DEBUG), kept in `sent` for the demo and the tests,
and answered with a Twilio-shaped SID. With `echo` (the demo passes `print_to_terminal`) each
send is also shown as the family would get it: the masked number, the language, the SMS text and
the answer link it carries, or the call's spoken script and the keys it offers (`describe_sms`,
`describe_call`). The texts carry no name or health data (notifications/messages.py), and the
number stays masked there too. With `on_status` it also simulates a provider's status news in
the shared status words (recorded like any provider's, notifications/status.py), on a timer:

- SMS: "sent", then "delivered";
- call: "ringing", then "no-answer" (nobody answers a console call, so it never confirms; the
  escalation moves on exactly as it would with a family that does not pick up).

The news always arrives from another thread, never from inside `send`, even
with zero delays: Twilio's callbacks can also arrive before the dispatcher has stored the SID,
and the receiving side must cope with that.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import secrets
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import phonenumbers

from notifications import messages
from notifications.channels import Accepted, CallScript, Outgoing, Text
from welfare.channels import ChannelKind

logger = logging.getLogger(__name__)

Kind = Literal["sms", "voice", "whatsapp"]
# provider_id, kind, status, extra
StatusCallback = Callable[[str, Kind, str, dict[str, Any]], None]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# Run `action` after `delay` seconds; return something that can cancel it.
Scheduler = Callable[[float, Callable[[], None]], Cancellable]


def thread_timer(delay: float, action: Callable[[], None]) -> Cancellable:
    timer = threading.Timer(delay, action)
    timer.daemon = True
    timer.start()
    return timer


def mask_phone(phone: str, *, gap: str = "") -> str:
    """'+85291234567' -> '+852****4567': the country code and the last four digits only.
    `gap` goes between the two ('+852 ****4567' for people to read)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) < 7:
        return "****"
    try:
        country = phonenumbers.parse(phone, None).country_code if phone.startswith("+") else None
    except phonenumbers.NumberParseException:
        country = None
    return f"+{country}{gap}****{digits[-4:]}" if country else f"****{digits[-4:]}"


def _language_words(language: str | None) -> str:
    """The template language the contact's tag chose, and the tag when it differs."""
    chosen = messages.pick_language(language)
    return chosen if not language or language == chosen else f"{chosen} (contact: {language})"


# The family's answer link in an alert SMS (notifications/dispatcher.py `answer_url`).
_ANSWER_LINK = re.compile(r"https?://\S+/r/[A-Za-z0-9_-]{16}(?![A-Za-z0-9_-])")


def describe_sms(*, to: str, body: str, language: str | None, whatsapp: bool = False) -> str:
    """An SMS as the family would get it, for the terminal: masked number, language, text, and
    the answer link it carries on a line of its own, for whoever runs the demo to open and
    answer as the family would ("I'm coming", "I can't come")."""
    what = "WhatsApp" if whatsapp else "SMS"
    head = f"{what} to {mask_phone(to, gap=' ')}, language {_language_words(language)}"
    lines = [f"---- {head} ----", *(f"  {line}" for line in body.splitlines())]
    lines += [f"  answer as the family: {link}" for link in _ANSWER_LINK.findall(body)]
    return "\n".join(lines)


def describe_call(*, to: str, script: CallScript, language: str | None) -> str:
    """A call as the family would hear it, for the terminal: masked number, language, what is
    said before the keypress, the keys on offer, and what happens without one."""
    words = [f"language {_language_words(language)}"] if language else []
    head = ", ".join([mask_phone(to, gap=" "), *words, f"voice {messages.say_language(language)}"])
    keys = ", ".join(f"{key} = {meaning}" for key, meaning in script.keys.items())
    lines = [
        f"---- call to {head} ----",
        f"  says: {script.text}",
        f"        {messages.call_prompt(language, script.purpose)}",
        f"  keys: {keys}",
        f"  no key: said once more, then: {messages.call_goodbye(language)}",
    ]
    if script.detect_machine:
        lines.append("  answering machine: a short voicemail, and the next contact is called")
    return "\n".join(lines)


_terminal_lock = threading.Lock()


def print_to_terminal(block: str) -> None:
    """`echo` for the demo: one block to stdout at once, even from several sending threads."""
    with _terminal_lock:
        sys.stdout.write(block + "\n")
        sys.stdout.flush()


def fake_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits (34 characters)."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class ConsoleItem:
    kind: Kind
    provider_id: str
    to: str
    content: str  # the SMS body or the call's spoken text
    idempotency_key: str
    message_id: uuid.UUID | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class ConsoleChannel:
    name = "console"

    def __init__(
        self,
        on_status: StatusCallback | None = None,
        *,
        sms_delays: tuple[float, float] = (0.5, 1.5),
        call_delays: tuple[float, float] = (0.5, 1.5),
        scheduler: Scheduler = thread_timer,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        """`sms_delays`/`call_delays`: seconds after the send at which the first and the second
        simulated status arrive. `scheduler` runs them (tests pass a fake timer). `echo` gets
        each send described for people (`print_to_terminal` in the demo)."""
        self._on_status = on_status
        self._echo = echo
        self._sms_delays = sms_delays
        self._call_delays = call_delays
        self._schedule = scheduler
        self._lock = threading.Lock()
        self._sent: list[ConsoleItem] = []
        self._pending: dict[int, Cancellable | None] = {}
        self._tokens = itertools.count()
        self._closed = False

    @property
    def sent(self) -> list[ConsoleItem]:
        """A copy of everything sent so far, oldest first."""
        with self._lock:
            return list(self._sent)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()

    def close(self) -> None:
        """Cancel the simulated statuses not yet delivered; later sends simulate nothing."""
        with self._lock:
            self._closed = True
            pending = [handle for handle in self._pending.values() if handle is not None]
            self._pending.clear()
        for handle in pending:
            handle.cancel()

    def send(self, outgoing: Outgoing) -> Accepted:
        content = outgoing.content
        if isinstance(content, Text):
            return self.send_sms(
                to=outgoing.to,
                body=content.body,
                idempotency_key=outgoing.idempotency_key,
                language=outgoing.language,
                message_id=outgoing.message_id,
                whatsapp=outgoing.kind is ChannelKind.whatsapp,
            )
        assert isinstance(content, CallScript)
        return self.call(
            to=outgoing.to,
            script=content,
            idempotency_key=outgoing.idempotency_key,
            language=outgoing.language,
            message_id=outgoing.message_id,
        )

    def rate_key(self, kind: ChannelKind) -> str:
        return f"{kind.value}:{self.name}"

    def send_sms(
        self,
        *,
        to: str,
        body: str,
        idempotency_key: str,
        language: str | None = None,
        message_id: uuid.UUID | None = None,
        whatsapp: bool = False,
    ) -> Accepted:
        sid = fake_sid("SM")
        kind: Kind = "whatsapp" if whatsapp else "sms"
        self._record(ConsoleItem(kind, sid, to, body, idempotency_key, message_id))
        logger.info("console %s %s to %s (%d characters)", kind, sid, mask_phone(to), len(body))
        logger.debug("console %s %s text: %s", kind, sid, body)
        self._show(lambda: describe_sms(to=to, body=body, language=language, whatsapp=whatsapp))
        self._simulate(sid, kind, [("sent", {}), ("delivered", {})], self._sms_delays)
        return Accepted(provider_id=sid, status="queued")

    def call(
        self,
        *,
        to: str,
        script: CallScript,
        idempotency_key: str,
        language: str | None = None,
        message_id: uuid.UUID | None = None,
    ) -> Accepted:
        # No answering machine here: the simulated call rings out unanswered.
        sid = fake_sid("CA")
        self._record(ConsoleItem("voice", sid, to, script.text, idempotency_key, message_id))
        logger.info("console call %s to %s", sid, mask_phone(to))
        logger.debug("console call %s script: %s", sid, script.text)
        self._show(lambda: describe_call(to=to, script=script, language=language))
        steps = [("ringing", {}), ("no-answer", {"duration": 0})]
        self._simulate(sid, "voice", steps, self._call_delays)
        return Accepted(provider_id=sid, status="queued")

    def _show(self, describe: Callable[[], str]) -> None:
        if self._echo is None:
            return
        try:
            self._echo(describe())
        except Exception:  # showing a send must never fail it
            logger.exception("console: could not show a send")

    def _record(self, item: ConsoleItem) -> None:
        with self._lock:
            self._sent.append(item)

    def _simulate(
        self,
        sid: str,
        kind: Kind,
        steps: list[tuple[str, dict[str, Any]]],
        delays: tuple[float, float],
    ) -> None:
        """Deliver `steps` in order, each at its delay after the send (chained, so they never
        overtake each other)."""
        callback = self._on_status
        if callback is None:
            return
        timeline = list(zip(delays, steps, strict=True))

        def step(index: int, previous: float) -> None:
            delay, (status, extra) = timeline[index]

            def fire() -> None:
                try:
                    callback(sid, kind, status, {"simulated": True, **extra})
                except Exception:
                    logger.exception(
                        "console %s %s: status handler failed on %r", kind, sid, status
                    )
                if index + 1 < len(timeline):
                    step(index + 1, delay)

            self._after(max(delay - previous, 0.0), fire)

        step(0, 0.0)

    def _after(self, delay: float, action: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                return
            token = next(self._tokens)
            self._pending[token] = None

        def run() -> None:
            with self._lock:
                if token not in self._pending:  # cancelled by close()
                    return
                del self._pending[token]
            action()

        handle = self._schedule(delay, run)
        with self._lock:
            if token in self._pending:
                self._pending[token] = handle
