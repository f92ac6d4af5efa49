"""Wiring for the entry points: the senders the settings ask for, per channel kind, and the
dispatcher round."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from notifications import routes
from notifications.channels import ChannelRegistry
from notifications.console_channel import ConsoleChannel, print_to_terminal
from notifications.dispatcher import Dispatcher
from notifications.status import apply_status
from notifications.webpush.sender import WebPushSender, vapid_subject
from welfare.channels import CONTACT_CHANNELS, ChannelKind
from welfare.push import service as push
from welfare.settings import Settings

log = logging.getLogger("welfare.notifications")


def build_channels(
    settings: Settings, factory: sessionmaker[Session], *, show_sends: bool = False
) -> ChannelRegistry:
    """Twilio for SMS and calls when its credentials are set; otherwise the console channel,
    whose simulated provider news lands on the timeline like Twilio's webhooks would.
    `show_sends` (the demo): the console prints every SMS and call to the terminal as the family
    would get it. Aliyun (mainland-China SMS) is registered for SMS too when its credentials
    are set, after the default, so a route picks it by name (+86) and it is never every SMS's
    default. A new channel kind or provider registers its sender here (docs/channels.md)."""
    routes.check(settings)
    registry = _default_channels(settings, factory, show_sends=show_sends)
    if settings.aliyun_configured:
        from notifications.aliyun.sms import AliyunSmsSender

        registry.register(ChannelKind.sms, AliyunSmsSender(settings))
    # Pushes to staff phones go through the web push sender whichever provider texts.
    registry.register(ChannelKind.push, webpush_sender(settings, factory))
    return registry


def _default_channels(
    settings: Settings, factory: sessionmaker[Session], *, show_sends: bool
) -> ChannelRegistry:
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


def webpush_sender(settings: Settings, factory: sessionmaker[Session]) -> WebPushSender:
    """Pushes to staff phones, signed with the service's VAPID key (read, or made if this is
    the first start, at the first push: welfare/push/service.py)."""
    return WebPushSender(
        lambda: push.ensure_vapid_keys(factory, settings).private_key,
        vapid_subject(settings),
        ttl_seconds=settings.push_ttl_seconds,
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


class ReportPoller(Protocol):
    """A provider's delivery-report job, driven from the worker's round."""

    def tick(self) -> bool: ...

    def close(self) -> None: ...


def report_pollers(settings: Settings, factory: sessionmaker[Session]) -> list[ReportPoller]:
    """The providers' report pollers the settings ask for: Aliyun's `QuerySendDetails` every
    `WELFARE_ALIYUN_REPORT_POLL_SECONDS` when its credentials are set."""
    pollers: list[ReportPoller] = []
    if settings.aliyun_configured:
        from notifications.aliyun.reports import AliyunReportPoller
        from notifications.aliyun.sms import AliyunSmsSender

        pollers.append(
            AliyunReportPoller(
                AliyunSmsSender(settings),
                factory,
                interval=settings.aliyun_report_poll_seconds,
                settings=settings,
            )
        )
    return pollers


def worker_round(
    sender: Dispatcher, pollers: list[ReportPoller]
) -> tuple[Callable[[], int], Callable[[], None]]:
    """The worker's round and shutdown with the report pollers in them: pass the first as
    `dispatch_round` and the second as `on_stop` (`run_worker`, `start_in_thread`). A poller's
    tick only starts its round in a thread of its own when it is due; it never counts as work
    done, so the worker's drain loop ends as before."""

    def round_() -> int:
        for poller in pollers:
            try:
                poller.tick()
            except Exception:
                log.exception("starting a report poll failed")
        return sender.pump()

    def stop() -> None:
        sender.close()
        for poller in pollers:
            poller.close()

    return round_, stop


def worker_jobs(
    settings: Settings, factory: sessionmaker[Session], *, show_sends: bool = False
) -> tuple[Callable[[], int], Callable[[], None]]:
    """What an entry point's worker runs: the dispatcher's round with the providers' report
    pollers in it, and its shutdown."""
    return worker_round(
        dispatcher(settings, factory, show_sends=show_sends), report_pollers(settings, factory)
    )
