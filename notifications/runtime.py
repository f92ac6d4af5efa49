"""Wiring for the entry points: the channel the settings ask for, and the dispatcher round."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications.channels import Channel
from notifications.console_channel import ConsoleChannel
from notifications.dispatcher import Dispatcher
from notifications.webhooks import apply_console_status
from welfare.settings import Settings

log = logging.getLogger("welfare.notifications")


def build_channel(settings: Settings, factory: sessionmaker[Session]) -> Channel:
    """Twilio when credentials are set; otherwise the console channel, whose simulated provider
    news lands on the timeline like Twilio's webhooks would."""
    if settings.twilio_configured:
        from notifications.twilio_channel import TwilioChannel

        return TwilioChannel(settings)

    def on_status(provider_id: str, kind: str, status: str, extra: dict[str, Any]) -> None:
        try:
            apply_console_status(factory, provider_id, status, extra)
        except Exception:
            log.exception("could not record simulated %s status", kind)

    return ConsoleChannel(on_status=on_status)


def dispatcher(
    settings: Settings, factory: sessionmaker[Session], channel: Channel | None = None
) -> Dispatcher:
    """The worker's dispatcher: pass its `pump` as the round and `close` as the shutdown."""
    return Dispatcher(
        factory,
        channel or build_channel(settings, factory),
        settings,
        concurrency=settings.dispatch_concurrency,
    )
