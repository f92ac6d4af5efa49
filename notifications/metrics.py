"""Prometheus counters for what the dispatcher sees, in the process that sends (the worker, or
the API process when the worker runs in-process). Labels carry codes and channels only."""

from __future__ import annotations

from prometheus_client import Counter

PROVIDER_ERRORS = Counter(
    "welfare_provider_errors_total",
    "Messages and calls the provider refused or could not take, by provider error code",
    ["channel", "code", "permanent"],
)
MESSAGES_SENT = Counter(
    "welfare_messages_sent_total",
    "Messages and calls the provider accepted",
    ["channel"],
)
RATE_LIMITED = Counter(
    "welfare_outbox_rate_limited_total",
    "Sends held back by the per-sender rate limit (tried again in a moment)",
    ["channel"],
)


def provider_error(channel: str, code: str | None, *, permanent: bool) -> None:
    PROVIDER_ERRORS.labels(
        channel=channel, code=code or "none", permanent="true" if permanent else "false"
    ).inc()


def sent(channel: str) -> None:
    MESSAGES_SENT.labels(channel=channel).inc()
