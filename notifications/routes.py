"""Routes per destination, and fail-over to the next provider of a route.

`WELFARE_ROUTES` ("+86=aliyun,twilio;+852=twilio", syntax in welfare/route_table.py) names the
providers that carry messages to a calling code, in the order they are tried. Only providers
that are switched on (their credentials set) and carry the row's channel kind count; a number no
entry matches goes to the default sender of its kind.

WhatsApp: a WhatsApp message that fails (outside the 24-hour window without an approved
template, a number without WhatsApp...) goes by SMS instead, at once (`carry_on`).

Fail-over: when the provider a row went through fails it for good (a permanent error, or its
retries ran out) or reports it undelivered, `fail_over` queues the same message once through
the next provider of the route that has not had it (a copy pinned to that provider, in the same
escalation step, so the step does not count as failed meanwhile). Never twice through one
provider; on the timeline as "failover" with both providers' names.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, partial

from sqlmodel import Session

from notifications import metrics
from welfare import outbox
from welfare.channels import ChannelKind
from welfare.db import on_commit
from welfare.incidents.models import Incident
from welfare.outbox import reach
from welfare.outbox.models import OutboxMessage
from welfare.residents.models import Contact
from welfare.route_table import parse_routes, providers_for
from welfare.settings import Settings

# The channel kinds each provider this project knows can carry.
PROVIDER_KINDS: dict[str, frozenset[ChannelKind]] = {
    "twilio": frozenset({ChannelKind.sms, ChannelKind.voice, ChannelKind.whatsapp}),
    "aliyun": frozenset({ChannelKind.sms}),
    "console": frozenset({ChannelKind.sms, ChannelKind.voice, ChannelKind.whatsapp}),
}


# Whether each provider is switched on by the settings (its credentials are set).
SWITCHED_ON: dict[str, Callable[[Settings], bool]] = {
    "twilio": lambda settings: settings.twilio_configured,
    "aliyun": lambda settings: settings.aliyun_configured,
    "console": lambda settings: not settings.twilio_configured,
}


def enabled(settings: Settings, provider: str) -> bool:
    check = SWITCHED_ON.get(provider)
    return check is not None and check(settings)


@lru_cache(maxsize=32)
def _table(text: str) -> list[tuple[str, tuple[str, ...]]]:
    return parse_routes(text)


def check(settings: Settings) -> None:
    """Refuse a table that names a provider this project does not know (at start)."""
    for prefix, providers in _table(settings.routes):
        unknown = [name for name in providers if name not in PROVIDER_KINDS]
        if unknown:
            known = ", ".join(sorted(PROVIDER_KINDS))
            raise ValueError(
                f"route for {prefix}: unknown provider {unknown[0]!r} (known: {known})"
            )


def route(settings: Settings, kind: ChannelKind, phone: str) -> list[str]:
    """The providers to try for `phone` on `kind`, in order: switched on and carrying `kind`.
    Empty: no route applies, the kind's default sender takes it."""
    return [
        name
        for name in providers_for(_table(settings.routes), phone)
        if kind in PROVIDER_KINDS.get(name, frozenset()) and enabled(settings, name)
    ]


def tried(message: OutboxMessage) -> list[str]:
    """The providers this message already went through (this row's, and its copies' before)."""
    earlier = [str(name) for name in message.params.get("tried", [])]
    return earlier + ([message.provider] if message.provider else [])


def carry_on(
    session: Session,
    settings: Settings,
    message: OutboxMessage,
    incident: Incident | None,
    *,
    reason: str,
) -> OutboxMessage | None:
    """A message that could not reach its person this way (failed for good, or reported
    undelivered): a WhatsApp message goes by SMS instead; anything else once through the next
    provider of its route."""
    if message.kind is ChannelKind.whatsapp:
        return fall_back_to_sms(session, message, incident, reason=reason)
    return fail_over(session, settings, message, incident, reason=reason)


def fall_back_to_sms(
    session: Session, message: OutboxMessage, incident: Incident | None, *, reason: str
) -> OutboxMessage | None:
    """The same message by SMS, at once, when the contact's number may be texted (consent, no
    opt-out, not a landline: SMS need not be among their chosen channels, WhatsApp failed)."""
    contact = session.get(Contact, message.contact_id) if message.contact_id else None
    if contact is None or message.to_phone is None:
        return None
    if reach.refusal(contact, ChannelKind.sms) not in (
        None,
        reach.NOT_THEIR_CHANNEL[ChannelKind.sms],
    ):
        return None
    params = {k: v for k, v in message.params.items() if k not in ("provider", "tried")}
    return _again(
        session,
        message,
        incident,
        kind=ChannelKind.sms,
        key_suffix="sms",
        params=params,
        event="whatsapp_fallback",
        detail={"reason": reason},
    )


def fail_over(
    session: Session,
    settings: Settings,
    message: OutboxMessage,
    incident: Incident | None,
    *,
    reason: str,
) -> OutboxMessage | None:
    """Queue `message` once more through the next provider of its route, or None when there
    is none left (or the copy exists already: a repeated failure report)."""
    if message.to_phone is None:
        return None
    done = tried(message)
    following = [
        name for name in route(settings, message.kind, message.to_phone) if name not in done
    ]
    if not done or not following:
        return None
    provider = following[0]
    copy = _again(
        session,
        message,
        incident,
        kind=message.kind,
        key_suffix=f"via:{provider}",
        params={**message.params, "provider": provider, "tried": done},
        event="failover",
        detail={"from_provider": done[-1], "to_provider": provider, "reason": reason},
    )
    if copy is not None:
        on_commit(session, partial(metrics.failover, done[-1], provider))
    return copy


def _again(
    session: Session,
    message: OutboxMessage,
    incident: Incident | None,
    *,
    kind: ChannelKind,
    key_suffix: str,
    params: dict[str, object],
    event: str,
    detail: dict[str, object],
) -> OutboxMessage | None:
    """A copy of `message` in its escalation step, once (a repeated report finds the key)."""
    assert message.to_phone is not None
    return outbox.enqueue(
        session,
        kind=kind,
        to=message.to_phone,
        language=message.language,
        template=message.template,
        key=f"{message.idempotency_key}:{key_suffix}"[:200],
        params=params,
        incident=incident,
        step_index=message.step_index,
        contact_id=message.contact_id,
        user_id=message.user_id,
        event=event,
        event_detail={"failed_message_id": message.id, **detail},
        once=True,
    )
