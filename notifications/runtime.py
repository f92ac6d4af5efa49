"""Wiring for the entry points: the senders the settings ask for, per channel kind, and the
dispatcher round."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications.channels import ChannelRegistry
from notifications.console_channel import ConsoleChannel, print_to_terminal
from notifications.dispatcher import Dispatcher
from notifications.status import apply_status
from notifications.webpush.sender import WebPushSender, vapid_subject
from welfare.channels import ChannelKind
from welfare.push import service as push
from welfare.settings import Settings

log = logging.getLogger("welfare.notifications")


def build_channels(
    settings: Settings, factory: sessionmaker[Session], *, show_sends: bool = False
) -> ChannelRegistry:
    """Twilio for SMS and calls when its credentials are set; otherwise the console channel,
    whose simulated provider news lands on the timeline like Twilio's webhooks would.
    `show_sends` (the demo): the console prints every SMS and call to the terminal as the family
    would get it. Pushes to staff phones go through the web push sender either way. A new
    channel kind or provider registers its sender here (docs/channels.md)."""
    if settings.twilio_configured:
        from notifications.twilio.client import TwilioChannel

        registry = ChannelRegistry.every_kind(TwilioChannel(settings))
        registry.register(ChannelKind.push, webpush_sender(settings, factory))
        return registry

    def on_status(provider_id: str, kind: str, status: str, extra: dict[str, Any]) -> None:
        try:
            apply_status(factory, provider_id, status, extra)
        except Exception:
            log.exception("could not record simulated %s status", kind)

    console = ConsoleChannel(
        on_status=on_status,
        echo=print_to_terminal if show_sends else None,
        call_delays=(0.5, settings.console_call_ring_seconds),
    )
    registry = ChannelRegistry.every_kind(console)
    registry.register(ChannelKind.push, webpush_sender(settings, factory))
    return registry


def webpush_sender(settings: Settings, factory: sessionmaker[Session]) -> WebPushSender:
    """Pushes to staff phones, signed with the service's VAPID key (made now if this is the
    first start: welfare/push/service.py)."""
    keys = push.ensure_vapid_keys(factory, settings)
    return WebPushSender(
        keys.private_key, vapid_subject(settings), ttl_seconds=settings.push_ttl_seconds
    )


def dispatcher(
    settings: Settings,
    factory: sessionmaker[Session],
    channels: ChannelRegistry | None = None,
    *,
    show_sends: bool = False,
) -> Dispatcher:
    """The worker's dispatcher: pass its `pump` as the round and `close` as the shutdown."""
    return Dispatcher(
        factory,
        channels or build_channels(settings, factory, show_sends=show_sends),
        settings,
        concurrency=settings.dispatch_concurrency,
    )
