"""Wiring for the entry points: the senders the settings ask for, per channel kind, and the
dispatcher round."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications import routes
from notifications.channels import ChannelRegistry
from notifications.console_channel import ConsoleChannel, print_to_terminal
from notifications.dispatcher import Dispatcher
from notifications.status import apply_status
from welfare.channels import CONTACT_CHANNELS, ChannelKind
from welfare.settings import Settings

log = logging.getLogger("welfare.notifications")


def build_channels(
    settings: Settings, factory: sessionmaker[Session], *, show_sends: bool = False
) -> ChannelRegistry:
    """Twilio for SMS and calls when its credentials are set; otherwise the console channel,
    whose simulated provider news lands on the timeline like Twilio's webhooks would.
    `show_sends` (the demo): the console prints every SMS and call to the terminal as the family
    would get it. A new channel kind or provider registers its sender here (docs/channels.md)."""
    routes.check(settings)
    if settings.twilio_configured:
        from notifications.twilio.client import TwilioChannel

        kinds = (ChannelKind.sms, ChannelKind.voice)
        if settings.twilio_whatsapp_from:  # without a sender, WhatsApp rows go by SMS instead
            kinds += (ChannelKind.whatsapp,)
        return ChannelRegistry.every_kind(TwilioChannel(settings), kinds)

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
    return ChannelRegistry.every_kind(console, CONTACT_CHANNELS)


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
