"""Prometheus counters for what the dispatcher sees, in the process that sends (the worker, or
the API process when the worker runs in-process). Labels carry codes and channels only."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
HELD_BACK = Counter(
    "welfare_messages_held_back_total",
    "Messages a limit per recipient kept back: the same text again (held for good), or too "
    "many to one number outside an escalation (sent later)",
    ["channel", "limit"],
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


# Per provider, for routes and fail-over: what each provider took or refused, how long it took
# to answer, what its delivery reports said, and what failed over from one to another.
PROVIDER_SENDS = Counter(
    "welfare_provider_sends_total",
    "Hand-overs to each provider, by whether it took them (accepted) or not (refused)",
    ["provider", "channel", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "welfare_provider_answer_seconds",
    "How long each provider took to answer a hand-over",
    ["provider"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
)
PROVIDER_DELIVERY = Counter(
    "welfare_provider_delivery_reports_total",
    "Final delivery news per provider (delivered, undelivered, failed): its delivery rate",
    ["provider", "status"],
)
FAILOVERS = Counter(
    "welfare_failovers_total",
    "Messages one provider failed (or reported undelivered) and the next of the route took over",
    ["from_provider", "to_provider"],
)


def provider_answer(provider: str | None, channel: str, outcome: object, seconds: float) -> None:
    name = provider or "none"
    taken = "refused" if isinstance(outcome, Exception) else "accepted"
    PROVIDER_SENDS.labels(provider=name, channel=channel, outcome=taken).inc()
    PROVIDER_SECONDS.labels(provider=name).observe(seconds)


def delivery_report(provider: str | None, status: str) -> None:
    PROVIDER_DELIVERY.labels(provider=provider or "none", status=status).inc()


def failover(from_provider: str, to_provider: str) -> None:
    FAILOVERS.labels(from_provider=from_provider, to_provider=to_provider).inc()
