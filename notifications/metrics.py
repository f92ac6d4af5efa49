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

CALLS_MISSED = Counter(
    "welfare_calls_missed_total",
    "Contacts' calls that ended without a key, by how (voicemail, no_answer, busy, no_key, "
    "failed, cancelled)",
    ["outcome"],
)
VOICEMAILS = Counter(
    "welfare_voicemails_total",
    "Answering machines reached: voicemail left on the live call, or not (the update failed)",
    ["result"],
)


def call_missed(outcome: str) -> None:
    CALLS_MISSED.labels(outcome=outcome).inc()


def voicemail(result: str) -> None:
    VOICEMAILS.labels(result=result).inc()


def provider_error(channel: str, code: str | None, *, permanent: bool) -> None:
    PROVIDER_ERRORS.labels(
        channel=channel, code=code or "none", permanent="true" if permanent else "false"
    ).inc()


def sent(channel: str) -> None:
    MESSAGES_SENT.labels(channel=channel).inc()
