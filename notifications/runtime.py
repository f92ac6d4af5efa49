"""Wiring for the entry points: the channel the settings ask for, and the dispatcher round."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications.channels import Channel
from notifications.console_channel import ConsoleChannel, print_to_terminal
from notifications.dispatcher import Dispatcher
from notifications.webhooks import apply_console_status
from welfare.settings import Settings

log = logging.getLogger("welfare.notifications")


def build_channel(
    settings: Settings, factory: sessionmaker[Session], *, show_sends: bool = False
) -> Channel:
    """Twilio when credentials are set; otherwise the console channel, whose simulated provider
    news lands on the timeline like Twilio's webhooks would. `show_sends` (the demo): the
    console channel prints every SMS and call to the terminal as the family would get it."""
    if settings.twilio_configured:
        from notifications.twilio_channel import TwilioChannel

        return TwilioChannel(settings)

    def on_status(provider_id: str, kind: str, status: str, extra: dict[str, Any]) -> None:
        try:
            apply_console_status(factory, provider_id, status, extra)
        except Exception:
            log.exception("could not record simulated %s status", kind)

    return ConsoleChannel(
        on_status=on_status,
        echo=print_to_terminal if show_sends else None,
        call_delays=(0.5, settings.console_call_ring_seconds),
    )


def dispatcher(
    settings: Settings,
    factory: sessionmaker[Session],
    channel: Channel | None = None,
    *,
    show_sends: bool = False,
) -> Dispatcher:
    """The worker's dispatcher: pass its `pump` as the round and `close` as the shutdown."""
    return Dispatcher(
        factory,
        channel or build_channel(settings, factory, show_sends=show_sends),
        settings,
        concurrency=settings.dispatch_concurrency,
    )
